"""TF-level half of the embedding analysis: the tf.Transform preprocessing_fn, its input format, its use.

Nothing here knows Beam. embeddings.py runs the preprocessing_fn's
analyzers over the whole dataset with tensorflow_transform.beam and exports
the transform graph; load() and apply() are then how the job, and later any
training job, turn embeddings into the reduced columns, so both compute them
the same way.

The transform, for the raw feature `embedding` (float32 [dim]):
  embedding_pca           = (embedding - mean) @ components     float32 [pca_dims]
  embedding_pca_whitened  = embedding_pca / sqrt(variance)       only with whitening
with mean = tft.mean, components = tft.pca (eigenvectors of the biased
covariance, largest variance first) and variance = tft.var of each component,
so whitened components have unit (population) variance.
"""
from typing import Callable, Dict

import numpy as np
import pyarrow as pa

from transforms import native_logs
from transforms.output.schema import EMBEDDING_COLUMN, PCA_COLUMN, WHITENED_COLUMN

with native_logs.quiet():  # TensorFlow's start-up notices, in whichever process imports this first
  import tensorflow as tf
  import tensorflow_transform as tft
  from tensorflow_metadata.proto.v0 import schema_pb2
  from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
  from tfx_bsl.tfxio import tensor_adapter

EMBEDDING = EMBEDDING_COLUMN  # the raw feature, named like the Parquet column it comes from
PCA, WHITENED = PCA_COLUMN, WHITENED_COLUMN
RAW_METADATA_DIR = tft.TFTransformOutput.RAW_METADATA_DIR  # where TFTransformOutput.raw_metadata looks


def raw_metadata(dim: int) -> dataset_metadata.DatasetMetadata:
  """The raw feature as a fixed-length float vector; saved with the transform for training jobs."""
  return dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec({EMBEDDING: tf.io.FixedLenFeature([dim], tf.float32)}))


def input_config(dim: int) -> tensor_adapter.TensorAdapterConfig:
  """How tf.Transform reads record_batch() batches: list<float32> column -> dense [batch, dim] tensor."""
  dense = schema_pb2.TensorRepresentation.DenseTensor(
      column_name=EMBEDDING, shape=schema_pb2.FixedShape(dim=[schema_pb2.FixedShape.Dim(size=dim)]))
  return tensor_adapter.TensorAdapterConfig(pa.schema([pa.field(EMBEDDING, pa.list_(pa.float32()))]),
                                            {EMBEDDING: schema_pb2.TensorRepresentation(dense_tensor=dense)})


def record_batch(embeddings: np.ndarray) -> pa.RecordBatch:
  """float32 [n, dim] -> a RecordBatch in the input_config() format (TFXIO, no tf.Example detour)."""
  n, dim = embeddings.shape
  offsets = pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32))
  column = pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(embeddings, np.float32).ravel()))
  return pa.RecordBatch.from_arrays([column], names=[EMBEDDING])


def make_preprocessing_fn(pca_dims: int, whiten: bool) -> Callable:
  """The preprocessing_fn for tft_beam.AnalyzeDataset; analyzers run in float64 for a stable PCA."""

  def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    x = tf.cast(inputs[EMBEDDING], tf.float64)
    mean = tft.mean(x, reduce_instance_dims=False, name='embedding_mean')
    components = tft.pca(x, pca_dims, tf.float64, name='embedding_components')
    reduced = tf.matmul(x - mean, components)
    outputs = {PCA: tf.cast(reduced, tf.float32)}
    if whiten:
      variance = tft.var(reduced, reduce_instance_dims=False, name='component_variance')
      outputs[WHITENED] = tf.cast(tf.math.divide_no_nan(reduced, tf.sqrt(variance)), tf.float32)
    return outputs

  return preprocessing_fn


def load(transform_dir: str) -> tft.TFTransformOutput:
  """The exported transform, as a training job loads it (local or gs:// path)."""
  return tft.TFTransformOutput(transform_dir)


def apply(transform: tft.TFTransformOutput, embeddings: np.ndarray) -> Dict[str, np.ndarray]:
  """float32 [n, dim] -> {column: float32 [n, pca_dims]}, eagerly, through the exported graph."""
  outputs = transform.transform_raw_features({EMBEDDING: tf.constant(embeddings, tf.float32)})
  return {name: tensor.numpy() for name, tensor in outputs.items()}
