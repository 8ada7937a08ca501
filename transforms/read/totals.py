"""What the inputs hold, counted in the launcher for the live progress line's total (pipeline/live_progress.py).

Run on a background thread while the job starts, so a long listing never
delays the job (the job matches its inputs again on a worker: match.py).
  - Image files: one record each, counted by listing.
  - Tar shards: their samples, counted from the members' headers, grouped as
    the reader groups them (webdataset.count_samples); an uncompressed shard's
    member data is skipped by seeking, not read.
  - TFRecord shards: only their bytes. A record's length is in its own header,
    so counting records means reading every shard; the launcher estimates them
    instead from the records per byte the workers report as they read.
"""
from typing import Iterable, NamedTuple, Optional

from apache_beam.io.filesystems import FileSystems

from transforms.read import match
from transforms.read.formats import webdataset
from transforms.read.formats.detect import TAR, TFRECORD


class Totals(NamedTuple):
  records: int  # image files and tar samples: exact
  tfrecord_bytes: int  # TFRecord shards' bytes: their records are estimated from what workers read


def _size(ref: match.FileRef) -> int:
  if ref.size is not None:
    return ref.size
  found = FileSystems.match([ref.path])[0].metadata_list
  return found[0].size_in_bytes if found else 0


def _tar_samples(path: str) -> int:
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return webdataset.count_samples(f)


def count(inputs: Iterable[tuple]) -> Totals:
  """Totals of the planned (pattern, format) inputs, each file once however many inputs name it."""
  seen, records, tfrecord_bytes = set(), 0, 0
  for pattern, fmt in inputs:
    for ref in match.expand(pattern, fmt):
      if ref.path in seen:
        continue
      seen.add(ref.path)
      if fmt == TFRECORD:
        tfrecord_bytes += _size(ref)
      elif fmt == TAR:
        records += _tar_samples(ref.path)
      else:
        records += 1
  return Totals(records, tfrecord_bytes)


def estimate(totals: Optional[Totals], tfrecord_records: int, tfrecord_bytes: int) -> Optional[float]:
  """The records to do: the exact part plus the TFRecord shards' records projected from those read so far
  (records per byte); None while unknown (not counted yet, or no TFRecord byte read yet)."""
  if totals is None:
    return None
  if not totals.tfrecord_bytes:
    return float(totals.records)
  if not tfrecord_bytes:
    return None
  return totals.records + tfrecord_records * totals.tfrecord_bytes / tfrecord_bytes
