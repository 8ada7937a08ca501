"""Inputs -> the files they name, with the ids image files get; shared by every reader and the packer.

An input is a glob (local or any Beam filesystem such as gs://), a folder, or
a text file of URIs, one per line, named by a plain path ending in `.txt`.
A folder means every file under it in the input's format (by extension):
every image file, or every TFRecord or tar shard. Ids of image files:
  - by glob or folder: the path under the glob's base (the directory before
    its first wildcard) or under the folder, without extension: `sub/cat` for
    `DIR/sub/cat.jpg` read by `DIR/**` or `DIR`;
  - by list: the line as written, without extension; relative lines are read
    from the list file's directory.
"""
import logging
import os
import posixpath
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import progress
from transforms.read import listing
from transforms.read.formats import detect

_WILDCARDS = '*?['
LIST_EXTENSION = '.txt'
_FIRST_FILE_LOOKAHEAD = 1000  # files listed in the launcher to find a folder's first file of a known format


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


def is_folder(pattern: str) -> bool:
  """A local directory, or an object store prefix (a plain path that is not an object)."""
  if is_list_file(pattern) or any(c in pattern for c in _WILDCARDS):
    return False
  return pattern.endswith('/') or os.path.isdir(pattern) or ('://' in pattern and not FileSystems.exists(pattern))


def as_glob(pattern: str) -> str:
  """The glob a folder stands for (everything under it); other inputs unchanged."""
  return pattern.rstrip('/') + '/**' if is_folder(pattern) else pattern


def _is_absolute(path: str) -> bool:
  return '://' in path or path.startswith('/')


def list_lines(list_path: str) -> Iterator[str]:
  with FileSystems.open(list_path, compression_type='uncompressed') as f:
    for raw in f:
      line = raw.decode('utf-8').strip()
      if line and not line.startswith('#'):
        yield line


def list_file_refs(list_path: str) -> Iterator[FileRef]:
  directory = pattern_base(list_path)
  for line in list_lines(list_path):
    path = line if _is_absolute(line) or not directory else FileSystems.join(directory, line)
    yield FileRef(path, posixpath.splitext(line)[0] or line, None)


def _refs(matches: Iterable[listing.Listed], base: str, only: Optional[str]) -> Iterator[FileRef]:
  """FileRefs of matched files, keeping only those of format `only` by name when it is given (folders)."""
  for match in matches:
    if only is None or detect.format_by_name(match.path) == only:
      yield FileRef(match.path, file_id(match.path, base), match.size_in_bytes)


def _glob(pattern: str, fmt: Optional[str]):
  """(the glob to match, the base of ids, the format to keep or None) for a glob or folder input."""
  if is_folder(pattern):
    glob = as_glob(pattern)
    return glob, pattern_base(glob), fmt
  return pattern, pattern_base(pattern), None


def expand(pattern: str, fmt: Optional[str] = None, anonymous: bool = False) -> Iterator[FileRef]:
  """The files an input names, in listing order, as they are listed (listing.py: never one list)."""
  if is_list_file(pattern):
    yield from list_file_refs(pattern)
  else:
    glob, base, only = _glob(pattern, fmt)
    yield from _refs(listing.files(glob, anonymous), base, only)


def first_file(pattern: str, fmt: Optional[str] = None) -> Optional[str]:
  """One file the input names, cheaply (for checks and format detection in the launcher); for a folder, the
  first whose name says it is in format `fmt` (any of images, TFRecord or tar when None)."""
  if is_list_file(pattern):
    if not FileSystems.exists(pattern):
      return None
    return next(list_file_refs(pattern), FileRef(None, '', None)).path
  if is_folder(pattern):
    matches = FileSystems.match([as_glob(pattern)], limits=[_FIRST_FILE_LOOKAHEAD])[0].metadata_list
    known = (detect.format_by_name(m.path) for m in matches)
    return next((m.path for m, f in zip(matches, known) if f and f == (fmt or f)), None)
  matches = FileSystems.match([pattern], limits=[1])[0].metadata_list
  return matches[0].path if matches else None


def once(path: str, refs: Iterable[FileRef]) -> FileRef:
  """One ref for a file named by several inputs (the smallest id), with a warning."""
  refs = sorted(refs, key=lambda ref: ref.id)
  if len(refs) > 1:
    logging.warning('%s is named by %d inputs; it is read once, with id %r', path, len(refs), refs[0].id)
  return refs[0]


def counted(refs: Iterable[FileRef], fmt: Optional[str]) -> Iterator[FileRef]:
  """An input's refs, each counted for the launcher's progress total as it is listed, then the input as listed."""
  for ref in refs:
    size = ref.size
    if size is None and fmt != detect.IMAGES:  # a shard named by a list: its bytes make the total's estimate
      size = next(iter(FileSystems.match([ref.path])[0].metadata_list), None)
      size = size.size_in_bytes if size is not None else 0
    progress.listed(fmt, size)
    yield ref
  progress.input_listed()
  progress.flush()


class MatchInputs(beam.PTransform):
  """Inputs of one format -> FileRefs, a file named by two inputs twice (the read units' grouping keeps one,
  with once(): transforms/read/units.py).

  Globs and folders are listed on a worker, as a stream (listing.py), so the
  launcher never lists millions of files and no process holds their list.
  """

  def __init__(self, patterns: Sequence[str], fmt: Optional[str] = None, anonymous: bool = False):
    super().__init__()
    self._patterns = list(patterns)
    self._fmt = fmt
    self._anonymous = anonymous

  def _match(self, pbegin, i: int, pattern: str):
    fmt, anonymous = self._fmt, self._anonymous
    if is_list_file(pattern):
      return (pbegin
              | f'List_{i}' >> beam.Create([pattern])
              | f'ListLines_{i}' >> beam.FlatMap(lambda pattern: counted(list_file_refs(pattern), fmt)))
    return (pbegin
            | f'Pattern_{i}' >> beam.Create([pattern])
            | f'Refs_{i}' >> beam.FlatMap(lambda pattern: counted(expand(pattern, fmt, anonymous), fmt)))

  def expand(self, pbegin):
    found = [self._match(pbegin, i, pattern) for i, pattern in enumerate(self._patterns)]
    return tuple(found) | 'AllFiles' >> beam.Flatten()
