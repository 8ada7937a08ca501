"""Checkpoints for --resume: rows committed as the run goes, every --checkpoint_rows rows per worker.

Beam's own Parquet writes cannot serve: they publish nothing until the whole
job has succeeded. A checkpoint file appears whole, by rename, or not at all.
"""
import uuid
from typing import Iterable, List

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.output.files import join


class Checkpoint(beam.DoFn):
  """Rows -> Parquet files of `rows_per_file` rows under `directory`, committed as they fill."""

  def __init__(self, directory: str, schema: pa.Schema, rows_per_file: int):
    self._directory = directory
    self._schema = schema
    self._rows_per_file = rows_per_file
    self._rows: List[dict] = []

  def setup(self):
    self._rows = []

  def process(self, row: dict) -> Iterable:
    self._rows.append(row)
    if len(self._rows) >= self._rows_per_file:
      self._flush()
    return ()

  def finish_bundle(self):
    self._flush()

  def _flush(self) -> None:
    if not self._rows:
      return
    table = pa.Table.from_pylist(self._rows, self._schema)
    path = join(self._directory, f'part-{uuid.uuid4().hex}.parquet')
    temp = path + '.inprogress'
    with FileSystems.create(temp) as f:
      pq.write_table(table, f)
    FileSystems.rename([temp], [path])
    self._rows = []
