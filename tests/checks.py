"""Checks shared by several test modules: matchers for Beam's assert_that, an output against a clean run's, the
embedding analysis vs numpy."""
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def errors_like(expected):
  """Matches error tuples (id, source, stage, message) against (id, source, stage, words in message)."""
  def check(actual):
    actual, want = sorted(actual), sorted(expected)
    assert [a[:3] for a in actual] == [w[:3] for w in want], actual
    for a, w in zip(actual, want):
      assert w[3] in a[3], (a, w)
  return check


def assert_same_output(output: pathlib.Path, clean: pathlib.Path) -> None:
  """The output's rows are those of a clean run's output, each id once: the same sources, classes and labels,
  scores and embeddings equal within float tolerance (another runner or batch may round otherwise), the same
  error rows."""
  tables = [pq.read_table(path / 'predictions').to_pylist() for path in (output, clean)]
  rows, expected = ({r['id']: r for r in table} for table in tables)
  assert len(tables[0]) == len(rows)  # each id once
  assert rows.keys() == expected.keys(), sorted(rows.keys() ^ expected.keys())[:10]
  for key, row in rows.items():
    want = expected[key]
    assert row.keys() == want.keys(), key
    for name in ('source', 'width', 'height', 'model', 'top_classes', 'top_labels'):
      assert row.get(name) == want.get(name), (key, name)
    for name in ('top_scores', 'embedding'):
      if want.get(name) is not None:
        np.testing.assert_allclose(row[name], want[name], rtol=1e-4, atol=1e-5, err_msg=f'{key} {name}')
  errors, expected_errors = (sorted((e['id'], e['source'], e['stage']) for e in pq.read_table(path / 'errors')
                                    .to_pylist()) for path in (output, clean))
  assert errors == expected_errors


def column(table: pa.Table, name: str) -> np.ndarray:
  """A list<float32> column as a [rows, dim] array."""
  return np.stack(table[name].to_numpy(zero_copy_only=False))


def assert_pca_matches_numpy(output: pathlib.Path, predictions: pa.Table, stats: dict, pca_dims: int) -> None:
  """--analyze_embeddings' statistics, exported transform and columns against numpy's PCA of the embeddings."""
  from transforms.analyze import embeddings as analysis
  from transforms.analyze import pca  # pylint: disable=import-outside-toplevel
  embeddings = column(predictions, 'embedding')
  centred = embeddings.astype(np.float64) - embeddings.mean(axis=0, dtype=np.float64)
  variances, vectors = np.linalg.eigh(centred.T @ centred / len(centred))  # population covariance
  order = np.argsort(variances)[::-1]
  variances, vectors = variances[order], vectors[:, order[:pca_dims]]
  assert np.allclose(stats['explained_variance_ratio'], variances[:pca_dims] / variances.sum(),
                     rtol=1e-4, atol=1e-7)
  assert np.allclose(stats['explained_variance'], variances[:pca_dims], rtol=1e-4)
  # The exported transform is affine, T(x) = (x - mean) @ components: probing it with unit steps reads them back.
  transform = pca.load(str(output / analysis.TRANSFORM_DIR))
  dim = embeddings.shape[1]
  origin = embeddings.mean(axis=0)
  probes = np.vstack([origin, origin + np.eye(dim, dtype=np.float32)]).astype(np.float32)
  outputs = pca.apply(transform, probes)[pca.PCA].astype(np.float64)
  components = outputs[1:] - outputs[0]
  assert components.shape == (dim, pca_dims)
  signs = np.sign(np.sum(components * vectors, axis=0))  # eigenvectors are defined up to sign
  assert np.all(signs != 0)
  assert np.allclose(components * signs, vectors, atol=2e-4)
  # ... and the Parquet column is the data projected on them, whitened to unit variance when asked.
  assert np.allclose(column(predictions, pca.PCA) * signs, centred @ vectors, atol=1e-4)
  if stats['whitened']:
    whitened = column(predictions, pca.WHITENED)
    assert whitened.shape == (len(embeddings), pca_dims) and np.allclose(whitened.var(axis=0), 1.0, atol=1e-3)
