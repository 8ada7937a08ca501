"""Parquet image tables: which column holds the image, which the id, what passes through; the read units a file's
footer gives; each row's image, id and values. Beam-free (the reader is transforms/read/parquet_tables.py).

A table holds its images in one of three ways:
  - a binary column of encoded image bytes;
  - Hugging Face datasets' Image feature, a struct {bytes, path} (hub-docs#1174), whose `path` is the id when
    no id column is given;
  - a string column of locations (gs://, local paths; http(s) only with --allow_http), read as image files are;
    a relative location is relative to the table's folder, as `datasets` resolves them.
The id column is --id_column, else a column named `id`; without one, the id is the image struct's path or the
location as the table writes it, else `TABLE#row=N` (N the row in the file), which is also where an error row
of a table holding its images points. Other columns pass through with their Arrow types.
"""
import io
import posixpath
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq

BINARY, STRUCT, URI = 'binary', 'image struct', 'uri'
ID_COLUMN = 'id'  # the id column when --id_column is not given and the table has one of this name
MAX_RANGES_PER_GROUP = 16  # a large row group of a URI table is cut into at most this many units (each reads it)
MAGIC = b'PAR1'
FOOTER_READ_BYTES = 64 << 10  # what pyarrow reads from a file's end to find its footer, whatever its length


class TableError(ValueError):
  """A table whose columns do not fit the options; the message says what to pass."""


class TableColumns(NamedTuple):
  image: str
  kind: str  # BINARY, STRUCT or URI
  id: Optional[str]
  passthrough: Tuple[str, ...]


class RowSpan(NamedTuple):
  """Rows [start, end) of a file, all in row group `group` (whose first row is `group_start`); the group's column
  chunks are bytes [byte_start, byte_end) and the footer [footer_start, size)."""
  path: str
  group: int
  start: int
  end: int
  group_start: int
  byte_start: int
  byte_end: int
  footer_start: int
  size: int


class Row(NamedTuple):
  id: str
  source: str  # TABLE#row=N, or the location of a URI table's image
  image: Optional[bytes]  # None for a URI table, and for a null image
  uri: Optional[str]
  extra: dict


def row_source(path: str, row: int) -> str:
  return f'{path}#row={row}'


def unit_name(span: RowSpan) -> str:
  return f'{span.path}#rows={span.start}-{span.end}'


def _kind(dtype: pa.DataType) -> Optional[str]:
  if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
    return BINARY
  if pa.types.is_struct(dtype):
    names = [dtype.field(i).name for i in range(dtype.num_fields)]
    if 'bytes' in names and _kind(dtype.field('bytes').type) == BINARY:
      return STRUCT
  if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
    return URI
  return None


def resolve(schema: pa.Schema, image_column: Optional[str], id_column: Optional[str],
            passthrough: Optional[Sequence[str]], reserved: Sequence[str], where: str) -> TableColumns:
  """The table's columns as the job reads them; raises TableError naming what to pass."""
  names = schema.names
  if image_column is None:
    found = [n for n in names if _kind(schema.field(n).type) in (BINARY, STRUCT)]
    if len(found) != 1:
      raise TableError(f'{where}: {"no" if not found else "more than one"} binary or image-struct column '
                       f'({", ".join(found) or "columns: " + ", ".join(names)}); name the image column with '
                       '--image_column (a string column is read as image locations)')
    image_column = found[0]
  if image_column not in names:
    raise TableError(f'{where}: no column {image_column!r} (--image_column); it has {", ".join(names)}')
  kind = _kind(schema.field(image_column).type)
  if kind is None:
    raise TableError(f'{where}: --image_column {image_column} is {schema.field(image_column).type}: not binary, '
                     'an image struct {bytes, path} or a string of locations')
  if id_column is not None and id_column not in names:
    raise TableError(f'{where}: no column {id_column!r} (--id_column); it has {", ".join(names)}')
  if id_column is None and ID_COLUMN in names and image_column != ID_COLUMN:
    id_column = ID_COLUMN
  if id_column is not None and not _is_id_type(schema.field(id_column).type):
    raise TableError(f'{where}: --id_column {id_column} is {schema.field(id_column).type}: ids are strings or '
                     'integers')
  others = [n for n in names if n not in (image_column, id_column)]
  if passthrough is None:
    passthrough = others
  missing = [n for n in passthrough if n not in others]
  if missing:
    raise TableError(f'{where}: --passthrough_keys {", ".join(missing)}: not a column besides the image and id '
                     f'(it has {", ".join(names)})')
  taken = [n for n in passthrough if n in reserved]
  if taken:
    raise TableError(f'{where}: column {", ".join(taken)} is an output column of the job; choose the columns to '
                     'pass through with --passthrough_keys')
  return TableColumns(image_column, kind, id_column, tuple(passthrough))


def _is_id_type(dtype: pa.DataType) -> bool:
  return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_integer(dtype)


def passthrough_types(schema: pa.Schema, columns: TableColumns) -> List[Tuple[str, pa.DataType]]:
  return [(n, schema.field(n).type) for n in columns.passthrough]


def spans(path: str, size: int, metadata: pq.FileMetaData, uri_rows_per_unit: Optional[int]) -> Iterator[RowSpan]:
  """The file's read units: one per row group; a URI table's large group cut into ranges of at least
  uri_rows_per_unit rows, at most MAX_RANGES_PER_GROUP (each range reads the group's bytes: they are strings)."""
  footer_start = max(0, size - max(FOOTER_READ_BYTES, metadata.serialized_size + 8))
  first = 0
  for g in range(metadata.num_row_groups):
    group = metadata.row_group(g)
    rows = group.num_rows
    starts = [_chunk_start(group.column(c)) for c in range(group.num_columns)]
    ends = [s + group.column(c).total_compressed_size for c, s in enumerate(starts)]
    step = rows
    if uri_rows_per_unit:
      step = max(uri_rows_per_unit, -(-rows // MAX_RANGES_PER_GROUP))
    for at in range(0, rows, max(step, 1)):
      yield RowSpan(path, g, first + at, first + min(at + step, rows), first,
                    min(starts, default=4), max(ends, default=4), footer_start, size)
    first += rows


def _chunk_start(chunk) -> int:
  if chunk.has_dictionary_page and chunk.dictionary_page_offset:
    return min(chunk.dictionary_page_offset, chunk.data_page_offset)
  return chunk.data_page_offset


class HeldBytes(io.RawIOBase):
  """A Parquet file of which only some byte ranges were read (a row group's chunks and the footer): pyarrow reads
  what it needs from them; a read outside them is a ValueError (the footer lied about its offsets)."""

  def __init__(self, size: int, pieces: Sequence[Tuple[int, bytes]]):
    super().__init__()
    self._size, self._pieces, self._pos = size, list(pieces), 0

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def tell(self) -> int:
    return self._pos

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
    self._pos = base + offset
    return self._pos

  def read(self, n: int = -1) -> bytes:
    n = self._size - self._pos if n is None or n < 0 else min(n, self._size - self._pos)
    if n <= 0:
      return b''
    for start, data in self._pieces:
      if start <= self._pos and self._pos + n <= start + len(data):
        out = data[self._pos - start:self._pos - start + n]
        self._pos += n
        return out
    raise ValueError(f'bytes {self._pos}-{self._pos + n} lie outside the row group and footer the footer names')


def read_span(span: RowSpan, group_bytes: bytes, footer_bytes: bytes, columns: TableColumns) -> pa.Table:
  """The span's rows of the columns the job reads, parsed from its group's bytes and the footer; a damaged
  group raises ValueError."""
  held = HeldBytes(span.size, [(span.byte_start, group_bytes), (span.footer_start, footer_bytes)])
  wanted = [columns.image] + ([columns.id] if columns.id else []) + list(columns.passthrough)
  try:
    parquet = pq.ParquetFile(held)
    present = set(parquet.schema_arrow.names)
    if columns.image not in present:
      raise ValueError(f'{span.path} has no column {columns.image}, which the first table holds the image in')
    table = parquet.read_row_group(span.group, columns=[c for c in wanted if c in present], use_threads=False)
  except (OSError, pa.ArrowException) as e:  # damaged data, not storage: it is all in memory
    raise ValueError(f'row group {span.group} of {span.path} cannot be read: {e}') from e
  table = table.slice(span.start - span.group_start, span.end - span.start)
  for name in wanted[1:]:  # a column another file of the input has: null here
    if name not in present:
      table = table.append_column(name, pa.nulls(table.num_rows))
  return table


def _struct_fields(column: pa.ChunkedArray, name: str) -> Optional[list]:
  """A struct column's field as Python values, null where the struct itself is null; None if it has no such
  field."""
  names = [column.type.field(i).name for i in range(column.type.num_fields)]
  if name not in names:
    return None
  return pa.chunked_array([c.flatten()[names.index(name)] for c in column.chunks],
                          column.type.field(name).type).to_pylist()


def rows(path: str, first: int, table: pa.Table, columns: TableColumns, schema: Optional[pa.Schema]) -> Iterator[Row]:
  """A table's rows in order, the first being row `first` of the file at path: the image (or its location,
  made absolute), the id, the passthrough values (cast to `schema`'s types when given: another file's may
  differ)."""
  image = table.column(columns.image)
  paths = [None] * table.num_rows
  if columns.kind == STRUCT:
    images = _struct_fields(image, 'bytes')
    paths = _struct_fields(image, 'path') or paths
  else:
    images = image.to_pylist()
  ids = table.column(columns.id).to_pylist() if columns.id else [None] * table.num_rows
  extras = [{}] * table.num_rows
  if columns.passthrough:
    extra = table.select(list(columns.passthrough))
    if schema is not None:
      extra = extra.cast(pa.schema([schema.field(n) for n in columns.passthrough]))
    extras = extra.to_pylist()
  folder = posixpath.dirname(path)
  for i, value in enumerate(images):
    where = row_source(path, first + i)
    if columns.kind == URI:
      uri = absolute(value, folder) if value else None
      yield Row(str(ids[i] if ids[i] is not None else value or where), uri or where, None, uri, extras[i])
    else:
      yield Row(str(ids[i] if ids[i] is not None else paths[i] or where), where, value, None, extras[i])


def absolute(location: str, folder: str) -> str:
  if '://' in location or location.startswith('/'):
    return location
  scheme, _, rest = folder.rpartition('://')
  joined = posixpath.normpath(posixpath.join(rest, location))
  return f'{scheme}://{joined}' if scheme else joined
