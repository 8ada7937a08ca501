"""Analyze stage (--analyze_embeddings): a PCA of all embeddings with tf.Transform, over the committed units' rows.

As tensorflow/transform keeps them apart: pca.py is the TF half (the
preprocessing_fn, and how the exported transform is loaded and applied, by
this job or a training job), Beam-free; statistics.py is plain numpy;
embeddings.py is the Beam half that runs the analysis over the dataset.
"""
