"""Image files -> read units of about --files_per_unit files, cut from the listing stream itself on the worker
that lists them: no grouping of files anywhere, and the first unit is read while the listing goes on.

A unit is a run of files in listing order (path order, listing.py) that ends
at a file whose path hashes to 0 modulo --files_per_unit (after at least a
quarter of it; at four times it at most), and is named `images@FIRST_PATH`.
The cut points come from the paths alone (listing.cut_point), so a resumed
run over the same files finds the same units, and a file added or removed
changes the unit it falls in (and rarely its neighbour), not the units after
it. The listing shards' edges (listing.split) start units too: for an input of
up to 64 units' files they are the same cut points; for more, names near the
top of the tree, which a few new files seldom move.
"""
from typing import Iterable, Iterator, List

from transforms.read import listing, match, units
from transforms.read.formats.detect import IMAGES

DEFAULT_FILES_PER_UNIT = 1000  # --files_per_unit
NAME_PREFIX = 'images@'


def _unit(run: List[match.FileRef]) -> units.Unit:
  first = run[0].path.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')  # names go in markers
  return units.to_unit(NAME_PREFIX + first, IMAGES, run)


def cut(refs: Iterable[match.FileRef], files_per_unit: int) -> Iterator[units.Unit]:
  """A listing stream's files, in units, each as soon as its last file is listed."""
  least, most = max(1, files_per_unit // 4), 4 * files_per_unit
  run: List[match.FileRef] = []
  for ref in refs:
    run.append(ref)
    if len(run) >= most or (len(run) >= least and listing.cut_point(ref.path, files_per_unit)):
      yield _unit(run)
      run = []
  if run:
    yield _unit(run)


def planner(files_per_unit: int):
  """A shard's FileRefs -> its units (list_inputs.ListInputs' `then`)."""
  return lambda refs: cut(refs, files_per_unit)
