"""What the inputs hold, counted in the launcher for the live progress line's total (pipeline/live_progress.py).

Run on a background thread while the job starts, so a long listing never
delays the job (the job matches its inputs again on a worker: match.py).
Nothing here reads an input a second time where that costs: a 100M-image job
on gs:// must not download its shards twice to show a total.
  - Image files: one record each, counted exactly by listing.
  - Tar shards on the local disk (no scheme, or file://) and uncompressed:
    their samples, counted exactly from the members' headers, grouped as the
    reader groups them (webdataset.count_samples). tarfile seeks over the
    member data, so only the headers are read.
  - Every other tar shard (compressed: a name ending .gz, .tgz, .bz2, .xz, ...
    or first bytes that say so; or on gs:// or another remote filesystem,
    whose reader downloads large chunks, so seeking saves nearly nothing):
    only its bytes, from the listing. It is never opened here.
  - TFRecord shards: only their bytes. A record's length is in its own header,
    so counting records means reading every shard.
The records of what is known only by its bytes are estimated per format, from
the records and bytes the workers report as they read them (transforms/progress.py;
records per byte differ between tar and TFRecord inputs):
  total = exact records + sum over formats of records read * format's bytes / bytes read.
A worker reports the bytes of exactly the shards counted by their bytes here
(tar_counted_exactly decides for both sides), so the two never mix.
"""
from typing import Dict, Iterable, Mapping, NamedTuple, Optional

from apache_beam.io.filesystems import FileSystems

from transforms.read import match
from transforms.read.formats import webdataset
from transforms.read.formats.detect import TAR, TFRECORD

ESTIMATED_FORMATS = (TAR, TFRECORD)  # progress counters `{format}_records`, `{format}_bytes` (transforms/progress.py)
COMPRESSED_NAMES = ('.gz', '.tgz', '.taz', '.bz2', '.tbz', '.tbz2', '.tb2', '.xz', '.txz', '.zst', '.tzst')
_MAGIC = (b'\x1f\x8b', b'BZh', b'\xfd7zXZ\x00', b'\x28\xb5\x2f\xfd')  # gzip, bzip2, xz, zstd
HEAD_BYTES = 6  # enough for any of _MAGIC


class Totals(NamedTuple):
  records: int  # image files and the samples of local uncompressed tar shards: exact
  estimated_bytes: Dict[str, int] = {}  # format -> bytes of the shards whose records are estimated; never mutated


def is_local(path: str) -> bool:
  return FileSystems.get_scheme(path) in (None, 'file')


def tar_counted_exactly(path: str, head: Optional[bytes] = None) -> bool:
  """Whether the launcher counts this tar shard's samples exactly (local, uncompressed) rather than by its bytes;
  `head`: the shard's first bytes when known (None: judged by its name alone)."""
  if not is_local(path) or path.lower().endswith(COMPRESSED_NAMES):
    return False
  return head is None or not head.startswith(_MAGIC)


def _size(ref: match.FileRef) -> int:
  if ref.size is not None:
    return ref.size
  found = FileSystems.match([ref.path])[0].metadata_list
  return found[0].size_in_bytes if found else 0


def _tar_samples(path: str) -> Optional[int]:
  """The samples of a local shard, or None when its first bytes say it is compressed (counted by its bytes)."""
  with FileSystems.open(path, compression_type='uncompressed') as f:
    if not tar_counted_exactly(path, f.read(HEAD_BYTES)):
      return None
    f.seek(0)
    return webdataset.count_samples(f)


def count(inputs: Iterable[tuple]) -> Totals:
  """Totals of the planned (pattern, format) inputs, each file once however many inputs name it."""
  seen, records, estimated = set(), 0, {}
  for pattern, fmt in inputs:
    for ref in match.expand(pattern, fmt):
      if ref.path in seen:
        continue
      seen.add(ref.path)
      samples = _tar_samples(ref.path) if fmt == TAR and tar_counted_exactly(ref.path) else None
      if samples is not None:
        records += samples
      elif fmt in ESTIMATED_FORMATS:
        estimated[fmt] = estimated.get(fmt, 0) + _size(ref)
      else:
        records += 1
  return Totals(records, {fmt: n for fmt, n in estimated.items() if n})


def estimate(totals: Optional[Totals], counts: Mapping[str, int]) -> Optional[float]:
  """The records to do: the exact part plus, per format counted by its bytes, its records projected from those
  the workers read (`{format}_records` over `{format}_bytes` in counts); None while unknown (not counted yet, or
  no byte of such a format read yet)."""
  if totals is None:
    return None
  total = float(totals.records)
  for fmt, size in totals.estimated_bytes.items():
    read = counts.get(f'{fmt}_bytes', 0)
    if not read:
      return None
    total += counts.get(f'{fmt}_records', 0) * size / read
  return total


def is_estimated(totals: Optional[Totals], counts: Mapping[str, int]) -> bool:
  """Whether estimate() still projects: some format counted by its bytes is not read whole yet."""
  return bool(totals) and any(counts.get(f'{fmt}_bytes', 0) < size for fmt, size in totals.estimated_bytes.items())
