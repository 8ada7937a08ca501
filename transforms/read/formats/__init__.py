"""Beam-free input formats: TFRecord framing, tf.train.Example, WebDataset tar shards, passthrough typing,
and telling them apart (detect.py). Importable without Beam or TensorFlow; the packer and tests use them too."""
