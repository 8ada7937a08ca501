"""A table's rows (parquet_table.Row) -> EncodedImage and error rows, whichever file format held the table.

A row holding its image gives it, unless it is null or over --max_input_bytes (error rows). A row of a
location table is read as an image file is (image_files.py): through the read window when there is one, a
location storage refuses an error row, or unread after retries; http(s) only with --allow_http.
"""
from typing import Callable, Iterator, List, Optional

import apache_beam as beam
import pyarrow as pa

from transforms import elements
from transforms.read import image_files, match, outcomes, storage
from transforms.read.formats import parquet_table
from transforms.read.settings import InputTooLarge, ReadSettings
from transforms.read.window import Window


class TableRows:
  """What a table reader shares: its settings, its image file reader for locations, its read counter."""

  def __init__(self, settings: ReadSettings):
    self.settings = settings
    self.store = storage.Storage.of(settings)
    self.files = image_files.reader(settings.max_input_bytes, self.store)
    self.read = outcomes.ReadCounter()
    self._types = pa.schema([(c.name, c.arrow_type) for c in settings.columns]) if settings.columns else None

  def rows(self, path: str, first: int, table: pa.Table) -> List[parquet_table.Row]:
    """A table's rows (parquet_table.rows), the passthrough values cast to the plan's types."""
    return list(parquet_table.rows(path, first, table, self.settings.table, self._types))

  def error(self, ref: elements.ImageRef, exc: BaseException):
    self.read.inc()
    return beam.pvalue.TaggedOutput(elements.ERRORS_TAG, elements.error_for(ref, elements.READ, exc))

  def emit(self, found: List[parquet_table.Row], window: Optional[Window]) -> Iterator:
    """Each row's image or error row, in order."""
    if self.settings.table.kind == parquet_table.URI:
      yield from self._fetched(found, window)
      return
    bound = self.settings.max_input_bytes
    for row in found:
      ref = elements.ImageRef(row.id, row.source, row.extra or None)
      if row.image is None:
        yield self.error(ref, ValueError('the row has no image (null)'))
      elif len(row.image) > bound:
        yield self.error(ref, InputTooLarge('the image', len(row.image), bound))
      else:
        self.read.inc()
        yield elements.EncodedImage(ref, row.image)

  def _fetched(self, found: List[parquet_table.Row], window: Optional[Window]) -> Iterator:
    allowed = lambda uri: self.settings.allow_http or not uri.startswith(storage.HTTP)
    refs = [match.FileRef(row.uri, row.id, None) for row in found]
    takes: List[Optional[Callable]] = []
    for row, ref in zip(found, refs):  # all the rows' reads in the window first, then taken in order
      ok = row.uri is not None and allowed(row.uri) and window is not None and window.reads > 1
      takes.append(self.files.prepare(ref, window) if ok else None)
    for row, file, take in zip(found, refs, takes):
      ref = elements.ImageRef(row.id, row.source, row.extra or None)
      if row.uri is None:
        yield self.error(ref, ValueError('the row has no image location (null)'))
      elif not allowed(row.uri):
        yield self.error(ref, PermissionError(f'{row.uri}: http(s) locations are read only with --allow_http'))
      else:
        for out in self.files.process(file, take):
          yield _with_extra(out, row.extra)


def _with_extra(out, extra: dict):
  """image_files' output for a location row, its passthrough values added (errors and unread pass as they are)."""
  if isinstance(out, elements.EncodedImage):
    return out._replace(ref=out.ref._replace(extra=extra or None))
  return out
