"""A glob's files as a stream, in name order, a page or a directory at a time, and cut into key ranges that
workers list side by side: no process holds a listing of the whole input, and none lists it alone.

Beam's match returns one list of every file (FileSystem.match builds
`metadata_list`), and its GCS listing also keeps a set of every name it has
listed (gcsio.list_files): at 10^8 objects, gigabytes in one process before the
first file flows on. Here:
  - gs://: google-cloud-storage's list_blobs, one page of up to 1,000 names and
    sizes at a time, each page's files yielded before the next is asked for;
  - local disk: a walk in name order, one directory's names at a time, one
    stat per matched file;
  - any other Beam filesystem: Beam's match (one list; no streaming listing for it).
Files are those Beam's match would give for the same glob (its own pattern
translation, FileSystem.translate_pattern), in the order of their full paths as
strings (GCS's own order; the local walk sorts each directory's names so that a
subtree comes where its path would).

split() cuts a glob's names into key ranges [lo, hi) of full paths, found
without listing the files: on gs://, by asking for the first name at or after a
prefix (one small list request each), a character of the name at a time; on
disk, from the names of the first directory levels. files(glob, lo, hi) lists one
range: GCS's startOffset/endOffset, or a walk that skips subtrees outside it.
"""
import concurrent.futures
import hashlib
import itertools
import os
import re
from typing import Iterator, List, NamedTuple, Optional, Tuple

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms.read import storage

_LITERAL = re.compile(r'^[^[*?]*')
PAGE_SIZE = 1000  # names per gs:// list request (GCS's most)
PROBES = 400  # gs:// list requests split() may make (of one name each)
PROBE_THREADS = 16  # of them at a time
SPLIT_DEPTH = 4  # directory levels split() may look into on disk
SPLIT_SAMPLE = 100_000  # names split() reads of one directory on disk


class Listed(NamedTuple):
  """What the listing knows of a file (Beam's FileMetadata has the same two fields)."""
  path: str
  size_in_bytes: Optional[int]


Range = Tuple[Optional[str], Optional[str]]  # [lo, hi) of full paths; None: unbounded


def _in(path: str, lo: Optional[str], hi: Optional[str]) -> bool:
  return (lo is None or path >= lo) and (hi is None or path < hi)


def _sorted_entries(directory: str, limit: Optional[int] = None) -> List[Tuple[str, bool]]:
  """(path, is a folder to walk) of a directory's entries, in the order of their paths with a folder's '/'
  (a symlink to a folder is skipped, as os.walk skips it)."""
  try:
    with os.scandir(directory) as it:
      entries = [(os.path.join(directory, e.name), e.is_dir(follow_symlinks=False), e.is_symlink() and e.is_dir())
                 for e in itertools.islice(it, limit)]
  except OSError:  # gone, or not readable: as os.walk (and Beam's match), nothing from it
    return []
  return sorted(((path, walk) for path, walk, linked in entries if not linked),
                key=lambda entry: entry[0] + '/' if entry[1] else entry[0])


def _walk(directory: str, matches, lo: Optional[str], hi: Optional[str], sizes: bool = True) -> Iterator[Listed]:
  for path, folder in _sorted_entries(directory):
    if not folder:
      if _in(path, lo, hi) and matches(path):
        try:
          yield Listed(path, os.path.getsize(path) if sizes else None)
        except OSError:  # gone since it was listed: reading it will say so, as Beam's listing does
          continue
      continue
    below = path + '/'
    if hi is not None and below >= hi:
      return  # this subtree and every entry after it
    if lo is None or lo < below or lo.startswith(below):  # else the whole subtree is before lo
      yield from _walk(path, matches, lo, hi, sizes)


def _root(glob: str) -> str:
  literal = _LITERAL.match(glob).group(0)
  return (literal if literal.endswith('/') else os.path.dirname(literal)) or '.'


def _local(glob: str, matches, lo: Optional[str], hi: Optional[str], sizes: bool) -> Iterator[Listed]:
  if _LITERAL.match(glob).group(0) == glob:  # no wildcard: the file itself
    if os.path.isfile(glob) and _in(glob, lo, hi):
      yield Listed(glob, os.path.getsize(glob))
    return
  yield from _walk(_root(glob), matches, lo, hi, sizes)


def _gcs(glob: str, matches, anonymous: bool, lo: Optional[str], hi: Optional[str], sizes: bool
         ) -> Iterator[Listed]:
  bucket, prefix = storage.split(_LITERAL.match(glob).group(0))
  at = f'{storage.GCS}{bucket}/'
  offsets = {'start_offset': lo[len(at):] if lo else None, 'end_offset': hi[len(at):] if hi else None}
  client = storage.list_client(anonymous)
  fields = 'items(name,size),nextPageToken' if sizes else 'items(name),nextPageToken'
  for blob in client.list_blobs(bucket, prefix=prefix, page_size=PAGE_SIZE, fields=fields,
                                **{k: v for k, v in offsets.items() if v}):
    path = at + blob.name
    if not blob.name.endswith('/') and matches(path) and _in(path, lo, hi):  # a name ending in /: a placeholder
      yield Listed(path, blob.size)


def beam_glob(glob: str) -> str:
  return glob + '*' if glob.endswith('/') else glob  # as Beam's match reads a trailing slash


def files(glob: str, anonymous: bool = False, lo: Optional[str] = None, hi: Optional[str] = None,
          sizes: bool = True) -> Iterator[Listed]:
  """The files the glob matches (a glob as Beam's FileSystems.match takes it) whose paths are in [lo, hi), as
  they are listed, in path order (any other filesystem: Beam's order); `sizes` False: names only, where that
  is cheaper."""
  glob = beam_glob(glob)
  matches = re.compile(FileSystem.translate_pattern(glob)).match
  if storage.is_gcs(glob):
    yield from _gcs(glob, matches, anonymous, lo, hi, sizes)
  elif FileSystems.get_scheme(glob) is None:
    yield from _local(glob, matches, lo, hi, sizes)
  else:
    for found in FileSystems.match([glob])[0].metadata_list:
      if _in(found.path, lo, hi):
        yield Listed(found.path, found.size_in_bytes)


def _next_names(client, bucket: str, prefix: str, budget: int) -> Optional[List[str]]:
  """The prefixes one character longer than `prefix` that some object's name has, in order, and the prefix
  itself if it names an object: one list request of one name each, at most `budget` (then what was found);
  None if the server ignores startOffset (gcp-storage-emulator does)."""
  found, start = [], prefix
  for _ in range(budget):
    blob = next(iter(client.list_blobs(bucket, prefix=prefix, start_offset=start, max_results=1,
                                       fields='items(name),nextPageToken')), None)
    if blob is None:
      break
    if blob.name < start:
      return None
    if len(blob.name) == len(prefix):  # an object named the prefix itself: it sorts first
      found.append(prefix)
      start = prefix + '\0'
      continue
    found.append(blob.name[:len(prefix) + 1])
    if ord(found[-1][-1]) >= 0x10FFFF:
      break
    start = found[-1][:-1] + chr(ord(found[-1][-1]) + 1)
  return found or [prefix]


def _gcs_points(glob: str, shards: int, anonymous: bool) -> List[str]:
  """Name prefixes, a character longer at each level (each level's prefixes probed side by side), until there
  are `shards` of them or PROBES requests were made."""
  bucket, prefix = storage.split(_LITERAL.match(glob).group(0))
  client, spent, level = storage.list_client(anonymous), 0, [prefix]
  with concurrent.futures.ThreadPoolExecutor(PROBE_THREADS) as pool:
    while len(level) < shards and spent < PROBES:
      budget = max(2, (PROBES - spent) // len(level))
      deeper = list(pool.map(lambda p: _next_names(client, bucket, p, budget), level))
      if any(names is None for names in deeper):
        return []  # offsets not kept: one range, listed whole
      spent += sum(len(names) + 1 for names in deeper)
      deeper = [name for names in deeper for name in names]
      if deeper == level:
        break
      level = deeper
  return [f'{storage.GCS}{bucket}/{name}' for name in level]


def _local_points(glob: str, shards: int) -> List[str]:
  level = _sorted_entries(_root(glob), SPLIT_SAMPLE)
  for _ in range(SPLIT_DEPTH - 1):
    if len(level) >= shards or not any(folder for _, folder in level):
      break
    level = [entry for path, folder in level
             for entry in (_sorted_entries(path, SPLIT_SAMPLE) if folder else [(path, False)])]
  return [path + '/' if folder else path for path, folder in level]


def cut_point(path: str, every: int) -> bool:
  """Whether a file ends a run of about `every` files (one in `every` does, by a hash of its path alone): read
  units and listing shards are cut there, so that a file added or removed moves no cut but its own."""
  return every <= 1 or int(hashlib.sha256(path.encode('utf-8', 'surrogateescape')).hexdigest()[:12], 16) % every == 0


def _ranges(points: List[str]) -> List[Range]:
  edges = [None] + points + [None]
  return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _counted_points(glob: str, most: int, every: int, anonymous: bool) -> Optional[List[str]]:
  """For a glob of at most `most` files, the first path after each cut point (cut_point): shards of about
  `every` files; None when it has more (listed up to `most` + 1 names, without sizes)."""
  points, cut, listed = [], False, 0
  for found in files(glob, anonymous, sizes=False):
    listed += 1
    if listed > most:
      return None
    if cut:
      points.append(found.path)
    cut = cut_point(found.path, every)
  return points


def split(glob: str, shards: int, every: int = 1, anonymous: bool = False) -> List[Range]:
  """Key ranges that together hold every file the glob matches, each once: for a glob of up to `shards` *
  `every` files, ranges of about `every` files cut where cut_point says (found by listing their names);
  for more, about `shards` ranges found without listing the files (a single range when the names cannot be
  cut: no wildcard, a filesystem other than local and gs://)."""
  glob = beam_glob(glob)
  local = FileSystems.get_scheme(glob) is None
  if shards <= 1 or _LITERAL.match(glob).group(0) == glob or not (local or storage.is_gcs(glob)):
    return [(None, None)]
  counted = _counted_points(glob, shards * every, every, anonymous)
  if counted is not None:
    return _ranges(counted)
  points = sorted(set(_local_points(glob, shards) if local else _gcs_points(glob, shards, anonymous)))
  step = max(1.0, len(points) / shards)
  return _ranges(sorted({points[int(i * step)] for i in range(1, shards) if int(i * step) < len(points)}))
