"""Arrow IPC tables (what Hugging Face's `save_to_disk` writes, `data-00000-of-00004.arrow`, and Feather v2
files) -> EncodedImage: a file per read unit, its record batches read in order.

An IPC stream has no footer to cut it by, so a file is one unit, as a tar shard is (an IPC file is the same
stream between a magic number and a footer, read the same way), and its rows are counted as they are read: a
file that breaks off part-way (truncated, damaged) gives the rows before it and a `stopped` error row for the
rest, so the summary is not `accounted`. On gs:// the file is read ahead through the read window in ranged
GETs (read_ahead.py); a storage failure reopens it and skips the batches already given (retry.resilient),
then reports the rest unread. The columns are those the plan resolved (formats/parquet_table.py); each row
becomes an image or an error row as a Parquet table's does (table_rows.py).
"""
import io
from typing import Iterable, Iterator, NamedTuple, Optional

import apache_beam as beam
import pyarrow as pa

from transforms import progress
from transforms.read import match, outcomes, read_ahead, retry, storage, table_rows
from transforms.read.formats import parquet_table
from transforms.read.settings import ReadSettings
from transforms.read.window import Window

FILE_MAGIC = b'ARROW1\x00\x00'  # an IPC file's first 8 bytes; its stream follows


class _Stream(io.RawIOBase):
  """The IPC stream of a file (after an IPC file's magic), its bytes counted; its own read failures are told
  apart from pyarrow's, which raises OSError for a stream that breaks off as storage does for a dropped link."""

  def __init__(self, f):
    super().__init__()
    self._f, self.failed, self.bytes = f, None, 0
    head = self._read(len(FILE_MAGIC))
    self._head = b'' if head == FILE_MAGIC else head

  def readable(self) -> bool:
    return True

  def _read(self, n: int) -> bytes:
    try:
      data = self._f.read(n)
    except Exception as e:
      self.failed = e
      raise
    self.bytes += len(data)
    return data

  def readinto(self, b) -> int:
    data, self._head = (self._head[:len(b)], self._head[len(b):]) if self._head else (self._read(len(b)), b'')
    b[:len(data)] = data
    return len(data)


class _Position(NamedTuple):
  batches: int  # record batches given so far
  rows: int  # their rows


def read_batches(f, position: _Position) -> Iterator:
  """(batch, position after it) from position on (one attempt); raises ValueError for bytes that are not a
  whole IPC stream, and storage's own errors as they are."""
  stream = _Stream(f)
  done = _Position(0, 0)
  try:
    for batch in pa.ipc.open_stream(stream):
      done = _Position(done.batches + 1, done.rows + batch.num_rows)
      if done.batches > position.batches:
        yield (batch, stream.bytes), done
  except Exception as e:  # pylint: disable=broad-except
    if stream.failed is not None or not isinstance(e, (OSError, pa.ArrowException)):
      raise
    raise ValueError(f'not a whole Arrow IPC stream after {done.rows} rows: {e}') from e


def schema(path: str, anonymous: bool = False) -> pa.Schema:
  """The table's Arrow schema, from its first message (in the launcher)."""
  with read_ahead.open_direct(storage.Storage(anonymous), path) as f:
    return pa.ipc.open_stream(_Stream(f)).schema


def planner(file: match.FileRef):
  """FileRef -> [(its unit, itself)]: a file is a unit."""
  return [(file.path, file)]


class _ReadArrow(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._rows = table_rows.TableRows(settings)

  def prepare(self, file: match.FileRef, window: Window) -> tuple:
    """(the window, the file read ahead through it on gs://, else None)."""
    return window, read_ahead.prefetched(self._rows.store, window, file.path, 0, file.size)

  def process(self, file: match.FileRef, prepared: Optional[tuple] = None) -> Iterable:
    window, ahead = prepared or (None, None)
    first = [ahead] if ahead is not None else []

    def attempt(at: _Position):
      f = first.pop() if first else read_ahead.open_direct(self._rows.store, file.path)
      with f:
        yield from read_batches(f, at)
    position, shown = _Position(0, 0), 0
    try:
      for item in retry.resilient(attempt, position, lambda at: f'{file.path}#row={at.rows}-'):
        if isinstance(item, retry.Unread):
          yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, item.location)
          return
        batch, consumed = item
        found = self._rows.rows(file.path, position.rows, pa.Table.from_batches([batch]))
        position = _Position(position.batches + 1, position.rows + batch.num_rows)
        progress.read_arrow(batch.num_rows, max(0, consumed - shown))
        shown = max(shown, consumed)
        yield from self._rows.emit(found, window)
    except Exception as e:  # pylint: disable=broad-except  # the bytes are no IPC stream, or storage refused for good
      where = parquet_table.row_source(file.path, position.rows)
      yield outcomes.rest_of_file_lost(self._rows.read, where, e, f'reading stopped at row {position.rows}')


def reader(settings: ReadSettings) -> beam.DoFn:
  return _ReadArrow(settings)
