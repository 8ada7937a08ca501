"""Image files by glob or list -> EncodedImage(ref, bytes), plus read errors.

Inputs are listed in shards on every worker, and each shard's files cut into
read units as they are listed (image_units.py), then read on that worker; a
resumed job skips the units it committed without opening their files.

Each file is one read in the read window (window.py), in flight while the
model runs on the files before it; on gs:// it is one GET (storage.py). A file
larger than --max_input_bytes is an error row: by the listing's size, never
read; of unknown size (named by a list), read up to the bound and no further. A
read that fails with a storage error is retried with backoff
(retry.resilient), on the window's thread; if storage keeps failing, the
file's path goes on the unread output.
"""
from typing import Callable, Iterable, Optional, Sequence

import apache_beam as beam

from transforms import elements
from transforms.read import image_units, match, outcomes, retry, storage
from transforms.read.formats import detect
from transforms.read.settings import MAX_INPUT_BYTES
from transforms.read.window import Fetch, Window

UNKNOWN_SIZE_BYTES = 256 << 10  # what a file whose listing gave no size counts against the window's byte bound


def read_file(store: storage.Storage, file: match.FileRef, max_bytes: int, _position=None) -> Iterable:
  """((the file's bytes, None),) or InputTooLarge; one attempt (retry.resilient's read)."""
  yield store.read_object(file.path, file.size, max_bytes), None


class _ReadFile(beam.DoFn):

  def __init__(self, max_bytes: int = MAX_INPUT_BYTES, store: Optional[storage.Storage] = None):
    self._read = outcomes.ReadCounter()
    self._max_bytes = max_bytes
    self._store = store or storage.Storage()

  def _attempts(self, file: match.FileRef) -> list:
    """The file's bytes, or its Unread, after retries; raises a data error."""
    return list(retry.resilient(lambda at: read_file(self._store, file, self._max_bytes, at), None,
                                lambda at: file.path))

  def prepare(self, file: match.FileRef, window: Window) -> Callable[[], list]:
    """Puts the file's read in the window; returns what process() takes its result with."""
    fetch = window.add(Fetch(lambda: self._attempts(file), UNKNOWN_SIZE_BYTES if file.size is None else file.size))
    return lambda: window.take(fetch)

  def process(self, file: match.FileRef, prepared: Optional[Callable[[], list]] = None) -> Iterable:
    ref = elements.ImageRef(file.id, file.path)
    try:
      (data,) = prepared() if prepared is not None else self._attempts(file)
    except Exception as e:  # pylint: disable=broad-except
      self._read.inc()
      yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, elements.error_for(ref, elements.READ, e))
      return
    if isinstance(data, retry.Unread):
      yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, data.location)
      return
    self._read.inc()
    yield elements.EncodedImage(ref, data)


def reader(max_bytes: int = MAX_INPUT_BYTES, store: Optional[storage.Storage] = None) -> beam.DoFn:
  return _ReadFile(max_bytes, store)


def ReadImageFiles(patterns: Sequence[str], max_bytes: int = MAX_INPUT_BYTES,  # pylint: disable=invalid-name
                   files_per_unit: int = image_units.DEFAULT_FILES_PER_UNIT) -> beam.PTransform:
  """Image files named by globs, folders or lists (local or any Beam filesystem such as gs://)."""
  return outcomes.MatchAndRead(patterns, detect.IMAGES, image_units.planner(files_per_unit), reader(max_bytes),
                               files_per_unit)
