"""Infer stage: decoded images -> predictions, through Beam's RunInference and the project's ModelHandler.

handler.py adapts any models.ImageModel to RunInference; models/ holds the one
small interface and one thin module per format (TF1 Hub, SavedModel, Keras,
TFLite), Beam-free; model_files.py brings remote models to local disk;
labels.py names the classes.
"""
