"""Analyze stage (--analyze_embeddings): tf.Transform over all embeddings, then reduced columns on every row.

In the same job, over the rows of the committed units, read back once every unit is written (pipeline/graph.py):

  rows -> batches -+-> RecordBatches -> tft_beam.AnalyzeDataset -> WriteTransformFn(OUT/transform)
                   |                                                         | ready (side input)
                   +-> the exported transform adds embedding_pca[...] <------+ -> rows -> write
                                              +-> moments -> statistics -> OUT/transform/embedding_stats.json

The rows wait for the full-pass analysis as a side input, then get their
columns from the exported transform itself, loaded with TFTransformOutput
exactly as a training job loads it, so the Parquet columns and training agree
by construction. The TF half (the preprocessing_fn) lives in pca.py,
the statistics' arithmetic in statistics.py.
"""
from typing import Iterable, List

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms.analyze import pca  # first: it imports TensorFlow quietly

import tensorflow_transform.beam as tft_beam  # pylint: disable=wrong-import-order
from transforms.analyze.statistics import moments, statistics
from transforms.output import files
from transforms.output.layout import TRANSFORM_DIR
from transforms.output.schema import reduced_columns

STATS_FILE = 'embedding_stats.json'
_MOMENTS = 'moments'
# Rows per batch for both the analyzers and the transform: big enough to amortize TF calls.
_MIN_BATCH, _MAX_BATCH = 16, 512


def transform_dir(output: str) -> str:
  return FileSystems.join(output, TRANSFORM_DIR)


def stats_path(output: str) -> str:
  return FileSystems.join(transform_dir(output), STATS_FILE)


def _stack(rows: List[dict]) -> np.ndarray:
  return np.asarray([row[pca.EMBEDDING] for row in rows], dtype=np.float32)


def finish(output: str, pca_dims: int, whiten: bool) -> dict:
  """After a successful run: the run summary's part (the commit step removed tf.Transform's scratch space)."""
  stats = files.read_json(stats_path(output))
  return dict(stats, pca_dims=pca_dims, whitened=whiten, transform_dir=transform_dir(output))


class _ApplyTransform(beam.DoFn):
  """Batch of rows -> the rows with the reduced columns; their moments go to the 'moments' output."""

  def __init__(self, directory: str):
    self._dir = directory
    self._transform = None

  def process(self, batch: List[dict], ready) -> Iterable:
    del ready  # a side input only so that this runs after the transform is exported
    if self._transform is None:
      self._transform = pca.load(self._dir)
    embeddings = _stack(batch)
    columns = pca.apply(self._transform, embeddings)
    yield beam.pvalue.TaggedOutput(_MOMENTS, moments(embeddings, columns[pca.PCA]))
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
    self.columns = reduced_columns(whiten)
    self.statistics_written = None  # set by expand: the output's commit waits for it

  def expand(self, rows):
    directory = transform_dir(self._output)
    batches = rows | 'Batch' >> beam.BatchElements(min_batch_size=_MIN_BATCH, max_batch_size=_MAX_BATCH)
    record_batches = batches | 'ToRecordBatch' >> beam.Map(
        lambda batch: pca.record_batch(_stack(batch)))
    with tft_beam.Context(temp_dir=self._temp_dir):
      transform_fn = ((record_batches, pca.input_config(self._dim))
                      | 'Analyze' >> tft_beam.AnalyzeDataset(
                          pca.make_preprocessing_fn(self._pca_dims, self._whiten)))
      ready = transform_fn | 'WriteTransform' >> tft_beam.WriteTransformFn(directory)
      _ = (pca.raw_metadata(self._dim)
           | 'WriteRawMetadata' >> tft_beam.WriteMetadata(
               FileSystems.join(directory, pca.RAW_METADATA_DIR), rows.pipeline))
    reduced = batches | 'Reduce' >> beam.ParDo(_ApplyTransform(directory),
                                               beam.pvalue.AsSingleton(ready)).with_outputs(_MOMENTS, main='rows')
    self.statistics_written = (
        reduced[_MOMENTS]
        | 'SumMoments' >> beam.CombineGlobally(sum)
        | 'Statistics' >> beam.Map(statistics, self._dim, self._pca_dims)
        | 'WriteStatistics' >> beam.Map(lambda stats, path: files.write_json(path, stats),
                                        stats_path(self._output)))
    return reduced.rows

