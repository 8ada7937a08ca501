"""Parquet image tables -> EncodedImage, a row group (or a range of a URI table's large group) per read unit.

Planning reads each file's footer on a worker (its tail: one ranged GET on gs://) and makes a unit of each row
group, `TABLE#rows=START-END`; the footer's row counts are what the unit must give, counted apart from the
reader: every row becomes an image or an error row (a null image, one over --max_input_bytes, a group whose
pages do not parse: one error row per row, `TABLE#row=N`). A file whose footer does not parse is one error row.

Reading a unit is ranged reads put in the read window (window.py) when the unit is queued: its group's column
chunks in pieces of read_ahead.CHUNK_BYTES (several in flight, as a TFRecord range's), and the footer, in
flight while earlier units are inferred; pyarrow then parses them from memory; its rows then become images or error rows (table_rows.py). Storage that keeps failing on the
table itself makes the unit unread (`TABLE#rows=START-END`), as a TFRecord range would be.
"""
from typing import Iterable, Iterator, List, NamedTuple, Optional

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms import elements, progress
from transforms.read import match, read_ahead, retry, storage, table_rows
from transforms.read.formats import parquet_table
from transforms.read.formats.parquet_table import RowSpan
from transforms.read.settings import ReadSettings
from transforms.read.window import Fetch, Window



def _read_once(store: storage.Storage, path: str, start: int, end: int):
  yield store.read_range(path, start, end), None


def read_bytes(store: storage.Storage, path: str, start: int, end: int):
  """Bytes [start, end) after retries, or a retry.Unread."""
  (got,) = list(retry.resilient(lambda _: _read_once(store, path, start, end), None, lambda _: path))
  return got


def footer(store: storage.Storage, path: str, size: int) -> pq.FileMetaData:
  """The file's footer, from its tail; raises ValueError for a file that is not Parquet."""
  tail = store.read_range(path, max(0, size - parquet_table.FOOTER_READ_BYTES), size)
  if len(tail) < 12 or tail[-4:] != parquet_table.MAGIC:
    raise ValueError(f'{path} is not a Parquet file (no PAR1 at its end)')
  length = int.from_bytes(tail[-8:-4], 'little')
  if length + 8 > len(tail):
    tail = store.read_range(path, max(0, size - length - 8), size)
  held = parquet_table.HeldBytes(size, [(size - len(tail), tail)])
  try:
    return pq.ParquetFile(held).metadata
  except (OSError, pa.ArrowException) as e:
    raise ValueError(f'the footer of {path} does not parse: {e}') from e


def schema(path: str, anonymous: bool = False) -> pa.Schema:
  """The table's Arrow schema (in the launcher)."""
  size = FileSystems.match([path])[0].metadata_list[0].size_in_bytes
  return footer(storage.Storage(anonymous), path, size).schema.to_arrow_schema()


class PlanRowGroups(beam.DoFn):
  """FileRef -> (unit name, RowSpan) per unit of its footer; a file whose footer cannot be read is one unit
  holding its error."""

  def __init__(self, settings: ReadSettings, uri_rows_per_unit: int):
    self._store = storage.Storage(settings.anonymous)
    self._rows = uri_rows_per_unit if settings.table.kind == parquet_table.URI else None

  def process(self, file: match.FileRef) -> Iterator:
    try:
      size = file.size
      if size is None:
        size = FileSystems.match([file.path])[0].metadata_list[0].size_in_bytes
      metadata = footer(self._store, file.path, size)
    except Exception as e:  # pylint: disable=broad-except  # gone, not Parquet, a damaged footer
      yield file.path, elements.error_for(elements.ImageRef(file.path, file.path), elements.READ, e)
      return
    progress.table_planned(metadata.num_rows)
    for span in parquet_table.spans(file.path, size, metadata, self._rows):
      yield parquet_table.unit_name(span), span


class _Prepared(NamedTuple):
  window: Window
  chunks: List[Fetch]  # the group's bytes in CHUNK_BYTES pieces, then the footer


def _pieces(span: RowSpan) -> List[tuple]:
  """(start, end) of the reads a unit costs: its group's bytes cut in read_ahead.CHUNK_BYTES (several in flight,
  as a TFRecord range's), then the footer."""
  group = [(at, min(at + read_ahead.CHUNK_BYTES, span.byte_end))
           for at in range(span.byte_start, span.byte_end, read_ahead.CHUNK_BYTES)]
  return group + [(span.footer_start, span.size)]


class _ReadTables(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._settings = settings
    self._store = storage.Storage.of(settings)
    self._rows = table_rows.TableRows(settings)

  def prepare(self, span: RowSpan, window: Window) -> _Prepared:
    """The unit's reads, in the window."""
    read = lambda start, end: lambda: read_bytes(self._store, span.path, start, end)
    return _Prepared(window, [window.add(Fetch(read(a, b), b - a)) for a, b in _pieces(span)])

  def _bytes(self, span: RowSpan, prepared: Optional[_Prepared]):
    """(the group's bytes, the footer's), or a retry.Unread."""
    if prepared is not None:
      try:
        got = [prepared.window.take(fetch) for fetch in prepared.chunks]
      finally:  # a read that failed leaves the rest: the window lets them go
        for fetch in prepared.chunks:
          prepared.window.drop(fetch)
    else:
      got = [read_bytes(self._store, span.path, a, b) for a, b in _pieces(span)]
    unread = next((g for g in got if isinstance(g, retry.Unread)), None)
    return unread or (b''.join(got[:-1]), got[-1])

  def process(self, span: RowSpan, prepared: Optional[_Prepared] = None) -> Iterable:
    table = self._settings.table
    try:
      got = self._bytes(span, prepared)
      if isinstance(got, retry.Unread):
        yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, parquet_table.unit_name(span))
        return
      found = self._rows.rows(span.path, span.start, parquet_table.read_span(span, *got, table))
      del got
    except Exception as e:  # pylint: disable=broad-except  # the group is damaged, or storage refused it for good
      for row in range(span.start, span.end):
        where = parquet_table.row_source(span.path, row)
        yield self._rows.error(elements.ImageRef(where, where), e)
      return
    yield from self._rows.emit(found, prepared.window if prepared is not None else None)


def reader(settings: ReadSettings) -> beam.DoFn:
  return _ReadTables(settings)
