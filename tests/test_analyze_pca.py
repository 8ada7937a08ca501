"""The TF half of the analysis: the arrow input format and the preprocessing_fn, analyzed by tf.Transform."""
import apache_beam as beam
import numpy as np
import tensorflow_transform.beam as tft_beam
from tfx_bsl.tfxio import tensor_adapter

from transforms.analyze import pca
from transforms.output.schema import reduced_columns


def test_record_batches_become_dense_float_tensors():
  x = np.arange(12, dtype=np.float32).reshape(3, 4)
  tensors = tensor_adapter.TensorAdapter(pca.input_config(4)).ToBatchTensors(
      pca.record_batch(x))
  assert list(tensors) == [pca.EMBEDDING]
  assert tensors[pca.EMBEDDING].shape == (3, 4)
  assert np.array_equal(tensors[pca.EMBEDDING].numpy(), x)


def test_analyzed_transform_centres_projects_and_whitens(tmp_path):
  rng = np.random.default_rng(1)
  x = (rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + 5).astype(np.float32)
  with beam.Pipeline() as p, tft_beam.Context(temp_dir=str(tmp_path / 'tmp')):
    batches = p | beam.Create([x[i:i + 50] for i in range(0, len(x), 50)]) | beam.Map(pca.record_batch)
    transform_fn = ((batches, pca.input_config(12))
                    | tft_beam.AnalyzeDataset(pca.make_preprocessing_fn(3, whiten=True)))
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp_path / 'transform'))
  transform = pca.load(str(tmp_path / 'transform'))
  assert sorted(transform.transformed_feature_spec()) == sorted(reduced_columns(True))
  columns = pca.apply(transform, x)
  centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
  variances, vectors = np.linalg.eigh(centred.T @ centred / len(x))
  top = np.argsort(variances)[::-1][:3]
  expected = centred @ vectors[:, top]
  reduced = columns[pca.PCA]
  signs = np.sign(np.sum(expected * reduced, axis=0))  # eigenvectors are defined up to sign
  assert reduced.shape == (400, 3) and reduced.dtype == np.float32
  assert np.allclose(reduced * signs, expected, atol=1e-4)
  assert np.allclose(columns[pca.WHITENED], reduced / np.sqrt(variances[top]), atol=1e-4)
  assert np.allclose(columns[pca.WHITENED].var(axis=0), 1.0, atol=1e-4)
