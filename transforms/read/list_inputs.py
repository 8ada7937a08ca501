"""Inputs -> listing shards, spread over the workers -> on each, the shard's FileRefs as they are listed: the
Beam side of match.py and listing.py.

Each input is cut into shards on a worker (listing.split: a few small list
requests; a `.txt` list into byte ranges), so the launcher never lists
millions of files, no process holds their list and the listing runs on every
worker at once. A file an earlier input names is left to it; files an input
skips for their name are counted (the summary's `skipped_files`); each file
is counted for the progress total as it is listed.
"""
import re
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms import progress
from transforms.read import listing
from transforms.read.formats import detect
from transforms.read.match import FileRef, Skipped, file_refs, glob_of, is_list_file, list_file_refs, skips

LISTING_SHARDS = 64  # shards each input is cut into, listed side by side (listing.split)
LIST_RANGE_BYTES = 1 << 20  # the least of a list file one shard reads
SKIPPED_TAG = 'skipped_files'


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
  earlier = tuple((glob, only) for glob, _, only in (glob_of(p, fmt) for p in patterns[:i] if not is_list_file(p)))
  pattern = patterns[i]
  if is_list_file(pattern):
    size = next(iter(FileSystems.match([pattern])[0].metadata_list), None)
    step = max(LIST_RANGE_BYTES, -(-(size.size_in_bytes if size else 0) // count))
    edges = list(range(0, size.size_in_bytes if size else 1, step)) + [None]
    cuts = [(str(lo), None if hi is None else str(hi)) for lo, hi in zip(edges, edges[1:])]
    found = [Shard(i, None, pattern, '', None, lo, hi, earlier) for lo, hi in cuts]
  else:
    glob, base, only = glob_of(pattern, fmt)
    found = [Shard(i, glob, pattern, base, only, lo, hi, earlier) for lo, hi in listing.split(glob, count, every, anonymous)]
  progress.shards_planned(len(found))
  progress.flush()
  return found


def shard_refs(shard: Shard, anonymous: bool = False, skipped: Optional[Skipped] = None) -> Iterator[FileRef]:
  """The files a shard names, as they are listed, without those an earlier input names (each file is read
  once, with the first input's id; two lists naming one file are not compared: the tally counts duplicate ids)."""
  if shard.glob is None:
    refs = list_file_refs(shard.source, int(shard.lo), None if shard.hi is None else int(shard.hi))
  else:
    refs = file_refs(listing.files(shard.glob, anonymous, shard.lo, shard.hi), shard.base,
                 skips(shard.glob, shard.only), skipped)
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
  FileRefs as they are listed (by default the FileRefs themselves); returns that and the skipped files'
  (extension, count, a few paths) per shard. `every`: the files a shard holds when an input is small (image
  units' size: a shard is then one unit or a few).

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
    listed = (pbegin
              | 'Inputs' >> beam.Create(list(range(len(patterns))))
              | 'Shards' >> beam.FlatMap(lambda i: shards(patterns, i, fmt, anonymous, count, every))
              | 'Spread' >> beam.Reshuffle()
              | 'List' >> beam.FlatMap(_listed, fmt, anonymous, then).with_outputs(SKIPPED_TAG, main='listed'))
    return listed.listed, listed[SKIPPED_TAG]


def _listed(shard: Shard, fmt: Optional[str], anonymous: bool, then) -> Iterator:
  """`then` of the shard's FileRefs, then (extension, count, a few paths) of the files it skipped."""
  skipped = Skipped()
  yield from then(counted(shard_refs(shard, anonymous, skipped), fmt))
  for ext, n in sorted(skipped.counts.items()):
    yield beam.pvalue.TaggedOutput(SKIPPED_TAG, (ext, n, tuple(skipped.examples[ext])))
