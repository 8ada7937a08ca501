"""Inputs -> the files they name, with the ids image files get; shared by every reader and the packer.

An input is a glob (local or any Beam filesystem such as gs://), a folder, or
a text file of URIs, one per line, named by a plain path ending in `.txt`.
A folder means every file under it in the input's format (by extension):
every image file, or every TFRecord or tar shard; a glob, every file it
matches but data sets' sidecar files (.parquet, .json, ...) whose extension it
does not name. Files left out are counted (list_inputs.py). Ids of image files:
  - by glob or folder: the path under the glob's base (the directory before
    its first wildcard) or under the folder, without extension: `sub/cat` for
    `DIR/sub/cat.jpg` read by `DIR/**` or `DIR`;
  - by list: the line as written, without extension; relative lines are read
    from the list file's directory.
"""
import logging
import os
import posixpath
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional

from apache_beam.io.filesystems import FileSystems

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


def skips(glob: str, only: Optional[str]) -> Callable[[str], bool]:
  """Whether the input leaves a file it matched out, by its name: a folder keeps the files of its format `only`;
  a glob all but data sets' sidecar files (.parquet, .json, ...: detect.py) whose extension it does not name."""
  if only is not None:
    return lambda path: detect.format_by_name(path) != only
  named = glob.lower()
  return lambda path: (ext := detect.extension(path)) in detect.SIDECAR_EXTENSIONS and not named.endswith(ext)


def file_refs(matches: Iterable[listing.Listed], base: str, skips: Callable[[str], bool],
          skipped: Optional['Skipped'] = None) -> Iterator[FileRef]:
  """FileRefs of matched files but those the input skips (counted in `skipped` when given)."""
  for match in matches:
    if not skips(match.path):
      yield FileRef(match.path, file_id(match.path, base), match.size_in_bytes)
    elif skipped is not None:
      skipped.add(match.path)


class Skipped:
  """Files a listing shard left out, by extension, with a few of their paths: the summary's `skipped_files`."""
  EXAMPLES = 3  # paths kept per extension and shard

  def __init__(self):
    self.counts: Dict[str, int] = {}
    self.examples: Dict[str, List[str]] = {}

  def add(self, path: str) -> None:
    ext = detect.extension(path) or '(none)'
    self.counts[ext] = self.counts.get(ext, 0) + 1
    if len(self.examples.setdefault(ext, [])) < self.EXAMPLES:
      self.examples[ext].append(path)


def glob_of(pattern: str, fmt: Optional[str]):
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
    glob, base, only = glob_of(pattern, fmt)
    yield from file_refs(listing.files(glob, anonymous), base, skips(glob, only))


def first_file(pattern: str, fmt: Optional[str] = None) -> Optional[str]:
  """One file the input names, cheaply (for checks and format detection in the launcher); for a folder, the
  first whose name says it is in format `fmt` (any of images, TFRecord or tar when None); for a glob, the first
  it does not skip (skips())."""
  if is_list_file(pattern):
    if not FileSystems.exists(pattern):
      return None
    return next(list_file_refs(pattern), FileRef(None, '', None)).path
  if is_folder(pattern):
    matches = FileSystems.match([as_glob(pattern)], limits=[_FIRST_FILE_LOOKAHEAD])[0].metadata_list
    known = [(m.path, detect.format_by_name(m.path)) for m in matches]
    if fmt is None and any(f not in (None, detect.PARQUET) for _, f in known):
      fmt = next(f for _, f in known if f not in (None, detect.PARQUET))  # tables beside shards are their metadata
    return next((path for path, f in known if f and f == (fmt or f)), None)
  matches = FileSystems.match([pattern], limits=[_FIRST_FILE_LOOKAHEAD])[0].metadata_list
  skipped = skips(pattern, None)
  return next((m.path for m in matches if not skipped(m.path)), matches[0].path if matches else None)


def once(path: str, refs: Iterable[FileRef]) -> FileRef:
  """One ref for a file named by several inputs (the smallest id), with a warning."""
  refs = sorted(refs, key=lambda ref: ref.id)
  if len(refs) > 1:
    logging.warning('%s is named by %d inputs; it is read once, with id %r', path, len(refs), refs[0].id)
  return refs[0]
