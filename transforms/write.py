"""Write stage: rows -> Parquet datasets, with explicit schemas.

Each dataset is written with Beam's WriteToParquet into the run's staging
folder; the job's last step moves the shards into place (transforms/output.py):
  predictions/part-RUN-SSSSS-of-NNNNN.parquet   one row per image that got a prediction
  errors/part-RUN-SSSSS-of-NNNNN.parquet        one row per input that did not
"""
from typing import Optional, Sequence, Tuple

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import records

PREDICTIONS_DIR = 'predictions'
ERRORS_DIR = 'errors'
TRANSFORM_DIR = 'transform'  # with --analyze_embeddings (analyze.py)
SUMMARY_FILE = 'summary.json'

ERROR_SCHEMA = pa.schema([
    pa.field('id', pa.string()),
    pa.field('source', pa.string()),
    pa.field('stage', pa.string()),
    pa.field('error_type', pa.string()),
    pa.field('message', pa.string()),
])


def prediction_schema(classify: bool, embed: bool, labels: bool,
                      passthrough: Sequence[Tuple[str, pa.DataType]] = (), reduced: Sequence[str] = ()) -> pa.Schema:
  """Columns exist only for what the run produces, so readers never see all-null columns."""
  fields = [
      pa.field('id', pa.string()),
      pa.field('source', pa.string()),
      pa.field('width', pa.int32()),
      pa.field('height', pa.int32()),
      pa.field('model', pa.string()),
  ]
  if classify:
    fields.append(pa.field('top_classes', pa.list_(pa.int32())))
    if labels:
      fields.append(pa.field('top_labels', pa.list_(pa.string())))
    fields.append(pa.field('top_scores', pa.list_(pa.float32())))
  if embed:
    fields.append(pa.field('embedding', pa.list_(pa.float32())))
  fields.extend(pa.field(name, pa.list_(pa.float32())) for name in reduced)  # embedding_pca, ...
  fields.extend(pa.field(name, dtype) for name, dtype in passthrough)
  return pa.schema(fields)


class WriteParquet(beam.PTransform):
  """Beam's WriteToParquet into `directory`; returns the paths of the shards once all are finalized."""

  def __init__(self, directory: str, schema: pa.Schema, num_shards: Optional[int] = None, name: str = 'part'):
    super().__init__()
    self._prefix = FileSystems.join(directory, name)
    self._schema = schema
    self._num_shards = num_shards or 0

  def expand(self, rows):
    return rows | beam.io.WriteToParquet(
        self._prefix, self._schema, file_name_suffix='.parquet', num_shards=self._num_shards)


class CountErrors(beam.DoFn):
  """ErrorRecord -> row dict, counted per stage for the run summary."""

  def process(self, error: records.ErrorRecord):
    Metrics.counter('errors', error.stage).inc()
    yield error._asdict()
