"""Resume (--resume): a crashed or stopped job continues where it was instead of starting over.

Every run commits its rows as it goes: Checkpoint writes them to
_checkpoints/RUN/ every --checkpoint_rows rows per worker (a file appears
whole, by rename, or not at all). Beam's own Parquet writes cannot serve: they
publish nothing until the whole job has succeeded. A resumed run reads back
everything earlier runs finished (transforms.output.previous_files), keeps one
row per input (a retried bundle may have checkpointed twice), skips those
inputs as soon as they are read, and writes the earlier rows again with its
own into the final datasets, so the result is the output one clean run would
have written. An input is matched by its (id, source) pair: the source alone
locates a record, and the id makes sure it is the same record.
"""
import logging
import uuid
from typing import Iterable, List, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import output, records

SKIPPED_TAG = 'skipped'


def key(item) -> tuple:
  """(id, source) of a row, an error row, an EncodedImage or an ErrorRecord."""
  if isinstance(item, dict):
    return (item['id'], item['source'])
  ref = item.ref if isinstance(item, records.EncodedImage) else item
  return (ref.id, ref.source)


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
    path = output.join(self._directory, f'part-{uuid.uuid4().hex}.parquet')
    temp = path + '.inprogress'
    with FileSystems.create(temp) as f:
      pq.write_table(table, f)
    FileSystems.rename([temp], [path])
    self._rows = []


class _ReadRows(beam.DoFn):
  """A finished file of an earlier run -> its rows; a file that cannot be read only costs redoing its work."""

  def __init__(self, columns: Sequence[str]):
    self._columns = list(columns)
    self._unreadable = Metrics.counter('resume', 'unreadable_files')

  def process(self, path: str) -> Iterable[dict]:
    try:
      with FileSystems.open(path, compression_type='uncompressed') as f:
        table = pq.read_table(f, columns=self._columns)
    except Exception as e:  # pylint: disable=broad-except
      self._unreadable.inc()
      logging.warning('resume: %s is unreadable, its inputs are done again: %s', path, e)
      return
    yield from table.to_pylist()


class ReadPrevious(beam.PTransform):
  """Rows of one dataset that earlier runs finished, one per input."""

  def __init__(self, files: Sequence[str], columns: Sequence[str]):
    super().__init__()
    self._files = list(files)
    self._columns = list(columns)

  def expand(self, pbegin):
    return (pbegin
            | 'Files' >> beam.Create(self._files)
            | 'Spread' >> beam.Reshuffle()
            | 'Rows' >> beam.ParDo(_ReadRows(self._columns))
            | 'ByInput' >> beam.Map(lambda row: (key(row), row))
            | 'Group' >> beam.GroupByKey()
            | 'OnePerInput' >> beam.MapTuple(lambda _, rows: next(iter(rows))))


class SkipDone(beam.DoFn):
  """Drops what an earlier run finished (images and read errors alike); each drop is tallied."""

  def __init__(self):
    self._skipped = Metrics.counter('resume', 'skipped_as_done')

  def process(self, item, done) -> Iterable:
    if key(item) in done:
      self._skipped.inc()
      yield beam.pvalue.TaggedOutput(SKIPPED_TAG, output.SKIPPED)
    else:
      yield item


def done_keys(previous: Sequence[beam.PCollection]):
  """The side input SkipDone looks inputs up in."""
  keys = (tuple(previous)
          | 'AllPrevious' >> beam.Flatten()
          | 'DoneKeys' >> beam.Map(lambda row: (key(row), True)))
  return beam.pvalue.AsDict(keys)
