"""What the inputs hold, for the live progress line's total (pipeline/live_progress.py), from what the workers
counted as they listed the inputs (transforms/progress.py: `planned`, `planned_{format}_bytes`, and
`inputs_split`, `listing_shards`, `shards_listed`):
the launcher lists nothing, so a job over 10^8 files starts, and stays, as small as one over ten.
  - Image files: one record each, counted as they are listed; Parquet tables: their rows, from each file's
    footer as a worker plans its units.
  - Tar and TFRecord shards, Arrow IPC tables: only their bytes, from the listing (a record's length is in its own header, a
    sample's members in theirs, a batch's rows in its own: counting them means reading every shard). Their records are estimated per
    format from the records and bytes the workers report as they read them (records per byte differ between
    tar and TFRecord inputs):
  total = image files + sum over formats of records read * format's bytes / bytes read.
While some input is still being listed, the total is a floor that grows, shown as an estimate.
"""
from typing import Dict, Mapping, NamedTuple, Optional

from transforms.read.formats.detect import ARROW, TAR, TFRECORD

ESTIMATED_FORMATS = (TAR, TFRECORD, ARROW)  # progress counters `{format}_records`, `{format}_bytes` (transforms/progress.py)


class Totals(NamedTuple):
  records: int  # image files: exact
  estimated_bytes: Dict[str, int] = {}  # format -> bytes of the shards whose records are estimated; never mutated
  listed: bool = True  # every input listed: the counts are whole


def from_counts(counts: Mapping[str, int], inputs: int) -> Optional[Totals]:
  """The totals the workers' listing has counted so far, for `inputs` planned inputs; None before any."""
  estimated = {fmt: counts.get(f'planned_{fmt}_bytes', 0) for fmt in ESTIMATED_FORMATS}
  listed = (counts.get('inputs_split', 0) >= inputs
            and counts.get('shards_listed', 0) >= counts.get('listing_shards', 0))
  if not listed and not counts.get('planned', 0) and not any(estimated.values()):
    return None
  return Totals(counts.get('planned', 0), {fmt: n for fmt, n in estimated.items() if n}, listed)


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
  """Whether estimate() still projects: an input still being listed, or some format counted by its bytes not
  read whole yet."""
  return totals is not None and (not totals.listed or any(
      counts.get(f'{fmt}_bytes', 0) < size for fmt, size in totals.estimated_bytes.items()))
