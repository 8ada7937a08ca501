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
import re
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms import progress
from transforms.read import listing
from transforms.read.formats import detect

_WILDCARDS = '*?['
LIST_EXTENSION = '.txt'
_FIRST_FILE_LOOKAHEAD = 1000  # files listed in the launcher to find a folder's first file of a known format
LISTING_SHARDS = 64  # shards each input is cut into, listed side by side (listing.split)
LIST_RANGE_BYTES = 1 << 20  # the least of a list file one shard reads


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


def list_file_refs(list_path: str, start: int = 0, end: Optional[int] = None) -> Iterator[FileRef]:
  """The files a list names on its lines that begin in bytes [start, end) (all of them by default): a list is
  read in byte ranges, each line once, as TFRecord ranges are."""
  directory = pattern_base(list_path)
  with FileSystems.open(list_path, compression_type='uncompressed') as f:
    at = start
    if start > 0:
      f.seek(start - 1)
      at += len(f.readline()) - 1  # the line that began before start belongs to the range before
    while end is None or at < end:
      raw = f.readline()
      if not raw:
        return
      at += len(raw)
      line = raw.decode('utf-8', 'surrogateescape').strip()
      if line and not line.startswith('#'):
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


class Shard(NamedTuple):
  """A part of one input that one worker lists: a key range of a glob's paths, or a byte range of a list."""
  input: int  # the input's place among the job's inputs of its format
  glob: Optional[str]  # None: a list file, `source`
  source: str  # the input as given
  base: str  # ids are paths under it (globs and folders)
  only: Optional[str]  # the format a folder's files are kept in, by name
  lo: Optional[str]  # [lo, hi): of paths for a glob, of bytes (as str) for a list
  hi: Optional[str]
  earlier: Tuple[Tuple[str, Optional[str]], ...]  # (glob, only) of the inputs before it: a file they name is theirs


def _named_by(glob: str, only: Optional[str]):
  """Whether a path is one a glob or folder input names, by the path alone."""
  matches = re.compile(FileSystem.translate_pattern(listing.beam_glob(glob))).match
  return lambda path: bool(matches(path)) and (only is None or detect.format_by_name(path) == only)


def shards(patterns: Sequence[str], i: int, fmt: Optional[str], anonymous: bool, count: int, every: int = 1
           ) -> List[Shard]:
  """The i-th input cut into about `count` shards, of about `every` files when it has few (listing.split; a
  list by its bytes)."""
  earlier = tuple((glob, only) for glob, _, only in (_glob(p, fmt) for p in patterns[:i] if not is_list_file(p)))
  pattern = patterns[i]
  if is_list_file(pattern):
    size = next(iter(FileSystems.match([pattern])[0].metadata_list), None)
    step = max(LIST_RANGE_BYTES, -(-(size.size_in_bytes if size else 0) // count))
    edges = list(range(0, size.size_in_bytes if size else 1, step)) + [None]
    cuts = [(str(lo), None if hi is None else str(hi)) for lo, hi in zip(edges, edges[1:])]
    found = [Shard(i, None, pattern, '', None, lo, hi, earlier) for lo, hi in cuts]
  else:
    glob, base, only = _glob(pattern, fmt)
    found = [Shard(i, glob, pattern, base, only, lo, hi, earlier) for lo, hi in listing.split(glob, count, every, anonymous)]
  progress.shards_planned(len(found))
  progress.flush()
  return found


def shard_refs(shard: Shard, anonymous: bool = False) -> Iterator[FileRef]:
  """The files a shard names, as they are listed, without those an earlier input names (each file is read
  once, with the first input's id; two lists naming one file are not compared: the tally counts duplicate ids)."""
  if shard.glob is None:
    refs = list_file_refs(shard.source, int(shard.lo), None if shard.hi is None else int(shard.hi))
  else:
    refs = _refs(listing.files(shard.glob, anonymous, shard.lo, shard.hi), shard.base, shard.only)
  theirs = [_named_by(glob, only) for glob, only in shard.earlier]
  for ref in refs:
    if not any(named(ref.path) for named in theirs):
      yield ref


def counted(refs: Iterable[FileRef], fmt: Optional[str]) -> Iterator[FileRef]:
  """A shard's refs, each counted for the launcher's progress total as it is listed, then the shard as listed."""
  for ref in refs:
    size = ref.size
    if size is None and fmt != detect.IMAGES:  # a shard named by a list: its bytes make the total's estimate
      size = next(iter(FileSystems.match([ref.path])[0].metadata_list), None)
      size = size.size_in_bytes if size is not None else 0
    progress.listed(fmt, size)
    yield ref
  progress.shard_listed()
  progress.flush()


class ListInputs(beam.PTransform):
  """Inputs of one format -> their shards, spread over the workers -> on each, `then` applied to the shard's
  FileRefs as they are listed (by default the FileRefs themselves). `every`: the files a shard holds when an
  input is small (image units' size: a shard is then one unit or a few).

  Each input is cut into shards on a worker (listing.split: a few small list
  requests), so the launcher never lists millions of files, no process holds
  their list and the listing runs on every worker at once.
  """

  def __init__(self, patterns: Sequence[str], fmt: Optional[str] = None, anonymous: bool = False,
               then: Optional[Callable[[Iterable[FileRef]], Iterable]] = None, every: int = 1,
               count: int = LISTING_SHARDS):
    super().__init__()
    self._patterns, self._fmt, self._anonymous = list(patterns), fmt, anonymous
    self._then, self._every, self._count = then or (lambda refs: refs), every, count

  def expand(self, pbegin):
    patterns, fmt, anonymous, then = self._patterns, self._fmt, self._anonymous, self._then
    every, count = self._every, self._count
    return (pbegin
            | 'Inputs' >> beam.Create(list(range(len(patterns))))
            | 'Shards' >> beam.FlatMap(lambda i: shards(patterns, i, fmt, anonymous, count, every))
            | 'Spread' >> beam.Reshuffle()
            | 'List' >> beam.FlatMap(lambda shard: then(counted(shard_refs(shard, anonymous), fmt))))
