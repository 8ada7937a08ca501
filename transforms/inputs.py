"""Input patterns -> the files they name, with the ids image files get; shared by every reader and the packer.

An input is a glob (local or any Beam filesystem such as gs://) or a text file of URIs, one per
line, named by a plain path ending in `.txt`. Ids of image files:
  - by glob: the path under the glob's base (the directory before its first wildcard), without
    extension: `sub/cat` for `DIR/sub/cat.jpg` read by `DIR/**`;
  - by list: the line as written, without extension; relative lines are read from the list
    file's directory.
"""
import dataclasses
import logging
import os
import posixpath
import socket
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import passthrough, records

_WILDCARDS = '*?['
LIST_EXTENSION = '.txt'
NAMESPACE = 'images'
WORKERS_NAMESPACE = 'records_read_by_worker'
COMPRESSIONS = ('auto', 'none', 'gzip')


@dataclasses.dataclass(frozen=True)
class ReadSettings:
  """How to find the image, id and passthrough values inside container formats."""
  image_key: Optional[str] = None  # tf.Example feature or tar member extension; None: the format's default
  id_key: Optional[str] = None  # tf.Example feature; None: the format's default
  compression: str = 'auto'  # of TFRecord files: auto (by a .gz extension), none or gzip
  columns: Tuple[passthrough.Column, ...] = ()


class FileRef(NamedTuple):
  path: str
  id: str  # the image's id when the file is one image
  size: Optional[int]  # bytes, when the listing knew it


def pattern_base(pattern: str) -> str:
  """The directory part of a glob before its first wildcard: ids are relative to it."""
  cut = min([pattern.find(c) for c in _WILDCARDS if c in pattern] or [len(pattern)])
  head = pattern[:cut]
  if cut == len(pattern):  # a plain file name: its directory is the base
    return posixpath.dirname(head) if '://' in head else os.path.dirname(head)
  return head[:head.rfind('/') + 1] if '/' in head else ''


def file_id(path: str, base: str) -> str:
  """The file's path under its pattern's base, without extension: 'sub/cat' for DIR/sub/cat.jpg."""
  rel = path[len(base):] if base and path.startswith(base) else path.rsplit('/', 1)[-1]
  rel = rel.lstrip('/')
  stem, _ = posixpath.splitext(rel)
  return stem or rel


def is_list_file(pattern: str) -> bool:
  return not any(c in pattern for c in _WILDCARDS) and pattern.lower().endswith(LIST_EXTENSION)


def _is_absolute(path: str) -> bool:
  return '://' in path or path.startswith('/')


def list_lines(list_path: str) -> Iterator[str]:
  with FileSystems.open(list_path, compression_type='uncompressed') as f:
    for raw in f:
      line = raw.decode('utf-8').strip()
      if line and not line.startswith('#'):
        yield line


def expand(pattern: str) -> Iterator[FileRef]:
  """The files an input names, in listing order."""
  if is_list_file(pattern):
    directory = pattern_base(pattern)
    for line in list_lines(pattern):
      path = line if _is_absolute(line) or not directory else FileSystems.join(directory, line)
      yield FileRef(path, posixpath.splitext(line)[0] or line, None)
    return
  base = pattern_base(pattern)
  for match in FileSystems.match([pattern])[0].metadata_list:
    yield FileRef(match.path, file_id(match.path, base), match.size_in_bytes)


def first_file(pattern: str) -> Optional[str]:
  """One file the input names, cheaply (for checks and format detection in the launcher)."""
  if is_list_file(pattern):
    if not FileSystems.exists(pattern):
      return None
    return next(expand(pattern), FileRef(None, '', None)).path
  matches = FileSystems.match([pattern], limits=[1])[0].metadata_list
  return matches[0].path if matches else None


class ExpandInputs(beam.DoFn):
  """Pattern -> FileRef; runs on a worker so that the launcher never lists millions of files."""

  def process(self, pattern: str) -> Iterable[FileRef]:
    yield from expand(pattern)


def _once(path: str, refs: Iterable[FileRef]) -> FileRef:
  refs = sorted(refs, key=lambda ref: ref.id)
  if len(refs) > 1:
    logging.warning('%s is named by %d inputs; it is read once, with id %r', path, len(refs), refs[0].id)
  return refs[0]


class EachFileOnce(beam.PTransform):
  """FileRefs -> one per path, spread over the workers.

  A file that several inputs name (overlapping globs, a list and a glob) would
  otherwise be read, and written, twice. Grouping by path is also the shuffle
  that spreads the reading, and the stages fused after it, over all workers.
  """

  def expand(self, files):
    return (files
            | 'ByPath' >> beam.Map(lambda ref: (ref.path, ref))
            | 'Group' >> beam.GroupByKey()
            | 'Once' >> beam.MapTuple(_once))


class ReadCounter:
  """Counts inputs read, in total and per worker process (the run summary shows how reads spread)."""

  def __init__(self):
    self._total = Metrics.counter(NAMESPACE, 'records_read')
    self._worker = None

  def inc(self, n: int = 1) -> None:
    if self._worker is None:  # created on the worker, where the pid means something
      self._worker = Metrics.counter(WORKERS_NAMESPACE, f'{socket.gethostname()}:{os.getpid()}')
    self._total.inc(n)
    self._worker.inc(n)


def image_or_error(make_image: Callable[[], records.EncodedImage]):
  """The image a reader makes of one record, or the read error row for it on the errors output."""
  try:
    return make_image()
  except records.RecordError as e:
    return beam.pvalue.TaggedOutput(records.ERRORS_TAG, e.error(records.READ))


def rest_of_file_lost(counter: ReadCounter, where: str, exc: BaseException, context: str):
  """The error row for what is left of a file that failed part-way, counted as one input; its id is where."""
  counter.inc()
  error = records.ErrorRecord(where, where, records.READ, type(exc).__name__, f'{context}: {exc}')
  return beam.pvalue.TaggedOutput(records.ERRORS_TAG, error)
