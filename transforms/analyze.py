"""Analyze stage (--analyze_embeddings): tf.Transform over all embeddings, then reduced columns on every row.

Between format and write, in the same job:

  rows -> batches -+-> RecordBatches -> tft_beam.AnalyzeDataset -> WriteTransformFn(OUT/transform)
                   |                                                         | ready (side input)
                   +-> the exported transform adds embedding_pca[...] <------+ -> rows -> write
                                              +-> moments -> statistics -> OUT/transform/embedding_stats.json

The rows wait for the full-pass analysis as a side input, then get their
columns from the exported transform itself, loaded with TFTransformOutput
exactly as a training job loads it, so the Parquet columns and training agree
by construction. The preprocessing_fn lives in transforms/embedding_stats.py.
"""
import json
from typing import Iterable, List

import apache_beam as beam
import numpy as np
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems

from transforms import embedding_stats, write

TRANSFORM_DIR = write.TRANSFORM_DIR
STATS_FILE = 'embedding_stats.json'
_MOMENTS = 'moments'
# Rows per batch for both the analyzers and the transform: big enough to amortize TF calls.
_MIN_BATCH, _MAX_BATCH = 16, 512


def transform_dir(output: str) -> str:
  return FileSystems.join(output, TRANSFORM_DIR)


def stats_path(output: str) -> str:
  return FileSystems.join(transform_dir(output), STATS_FILE)


def _stack(rows: List[dict]) -> np.ndarray:
  return np.asarray([row[embedding_stats.EMBEDDING] for row in rows], dtype=np.float32)


def moments(embeddings: np.ndarray, reduced: np.ndarray) -> np.ndarray:
  """Sums that add up across batches: count, sum of norms, sums and squares of x and of the reduced x."""
  x, p = embeddings.astype(np.float64), reduced.astype(np.float64)
  return np.concatenate([[len(x), np.linalg.norm(x, axis=1).sum()],
                         x.sum(0), (x * x).sum(0), p.sum(0), (p * p).sum(0)])


def statistics(total, dim: int, pca_dims: int) -> dict:
  """Dataset-level statistics from summed moments(); population variances, as tft.var and tft.pca use."""
  count = int(total[0]) if np.ndim(total) else 0  # CombineGlobally(sum) gives 0 for no rows
  if count == 0:
    return {'count': 0, 'mean_norm': None, 'total_variance': None, 'explained_variance': None,
            'explained_variance_ratio': None}
  mean_norm = total[1] / count
  sums = np.split(np.asarray(total[2:]) / count, np.cumsum([dim, dim, pca_dims]))
  x_mean, x_square, p_mean, p_square = sums
  total_variance = float(np.maximum(x_square - x_mean * x_mean, 0).sum())
  explained = np.maximum(p_square - p_mean * p_mean, 0)
  ratio = explained / total_variance if total_variance > 0 else np.zeros_like(explained)
  return {
      'count': count,
      'mean_norm': float(mean_norm),
      'total_variance': total_variance,
      'explained_variance': explained.tolist(),
      'explained_variance_ratio': ratio.tolist(),
  }


def _write_json(value: dict, path: str) -> None:
  with FileSystems.create(path) as f:
    f.write(json.dumps(value, indent=2, sort_keys=True).encode('utf-8'))


def finish(output: str, pca_dims: int, whiten: bool, temp_dir: str) -> dict:
  """After a successful run: removes tf.Transform's scratch space, returns the run summary's part."""
  if FileSystems.exists(temp_dir):
    FileSystems.delete([temp_dir])
  with FileSystems.open(stats_path(output), compression_type='uncompressed') as f:
    stats = json.loads(f.read().decode('utf-8'))
  return dict(stats, pca_dims=pca_dims, whitened=whiten, transform_dir=transform_dir(output))


class _ApplyTransform(beam.DoFn):
  """Batch of rows -> the rows with the reduced columns; their moments go to the 'moments' output."""

  def __init__(self, directory: str):
    self._dir = directory
    self._transform = None

  def process(self, batch: List[dict], ready) -> Iterable:
    del ready  # a side input only so that this runs after the transform is exported
    if self._transform is None:
      self._transform = embedding_stats.load(self._dir)
    embeddings = _stack(batch)
    columns = embedding_stats.apply(self._transform, embeddings)
    yield beam.pvalue.TaggedOutput(_MOMENTS, moments(embeddings, columns[embedding_stats.PCA]))
    for i, row in enumerate(batch):
      yield dict(row, **{name: values[i].tolist() for name, values in columns.items()})


class AnalyzeEmbeddings(beam.PTransform):
  """Rows with an `embedding` -> the same rows with `columns` added, once the whole dataset is analyzed."""

  def __init__(self, output: str, dim: int, pca_dims: int, whiten: bool, temp_dir: str):
    super().__init__()
    self._output = output
    self._dim = dim
    self._pca_dims = pca_dims
    self._whiten = whiten
    self._temp_dir = temp_dir
    self.columns = embedding_stats.output_columns(whiten)
    self.statistics_written = None  # set by expand: the output's commit waits for it

  def expand(self, rows):
    directory = transform_dir(self._output)
    batches = rows | 'Batch' >> beam.BatchElements(min_batch_size=_MIN_BATCH, max_batch_size=_MAX_BATCH)
    record_batches = batches | 'ToRecordBatch' >> beam.Map(
        lambda batch: embedding_stats.record_batch(_stack(batch)))
    with tft_beam.Context(temp_dir=self._temp_dir):
      transform_fn = ((record_batches, embedding_stats.input_config(self._dim))
                      | 'Analyze' >> tft_beam.AnalyzeDataset(
                          embedding_stats.make_preprocessing_fn(self._pca_dims, self._whiten)))
      ready = transform_fn | 'WriteTransform' >> tft_beam.WriteTransformFn(directory)
      _ = (embedding_stats.raw_metadata(self._dim)
           | 'WriteRawMetadata' >> tft_beam.WriteMetadata(
               FileSystems.join(directory, embedding_stats.RAW_METADATA_DIR), rows.pipeline))
    reduced = batches | 'Reduce' >> beam.ParDo(_ApplyTransform(directory),
                                               beam.pvalue.AsSingleton(ready)).with_outputs(_MOMENTS, main='rows')
    self.statistics_written = (
        reduced[_MOMENTS]
        | 'SumMoments' >> beam.CombineGlobally(sum)
        | 'Statistics' >> beam.Map(statistics, self._dim, self._pca_dims)
        | 'WriteStatistics' >> beam.Map(_write_json, stats_path(self._output)))
    return reduced.rows

