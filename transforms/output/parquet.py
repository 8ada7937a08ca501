"""Write stage: rows -> Parquet shards in the run's staging folder, with explicit schemas.

The job's last step (commit.py) moves the shards into place:
  predictions/part-RUN-SSSSS-of-NNNNN.parquet   one row per image that got a prediction
  errors/part-RUN-SSSSS-of-NNNNN.parquet        one row per input that did not
"""
from typing import Optional

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems


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
