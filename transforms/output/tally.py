"""The job's exact accounting, summed from the committed units' markers (markers.py).

Beam's metrics may count a retried bundle twice; a unit's marker is written
once per committed unit and the job keeps one marker per unit (a failed
attempt's outputs are discarded by the runner), so the counts that decide
`accounted` are the markers' counts, turned into (key, count) pairs and summed
in a shuffle. The commit step reads the sums as a side input.
"""
from typing import Dict, Iterable, Tuple

import apache_beam as beam

READ, ROWS, DUPLICATE_IDS = 'records_read', 'rows_written', 'duplicate_ids'
SKIPPED_UNITS, SKIPPED_RECORDS = 'skipped_units', 'skipped_records'  # committed by earlier runs (--resume)
REDONE_UNITS, REDONE_RECORDS = 'redone_units', 'redone_records'  # read by a resumed run
RESUMED = (SKIPPED_UNITS, SKIPPED_RECORDS, REDONE_UNITS, REDONE_RECORDS)
ERRORS_PREFIX = 'errors/'
UNREAD_PREFIX = 'unread/'  # + what storage would not give after retries (transforms/read/retry.py)


def marker_counts(marker: dict, skipped: bool = False, resumed: bool = False) -> Iterable[Tuple[str, int]]:
  """A committed unit's tally pairs; `skipped`: committed earlier; `resumed`: read by a resumed run."""
  yield READ, marker['records']
  yield ROWS, marker['rows']
  for stage, count in marker['errors_by_stage'].items():
    yield ERRORS_PREFIX + stage, count
  for location in marker['unread']:
    yield UNREAD_PREFIX + location, 1
  if skipped:
    yield SKIPPED_UNITS, 1
    yield SKIPPED_RECORDS, marker['records']
  elif resumed:
    yield REDONE_UNITS, 1
    yield REDONE_RECORDS, marker['records']


class DuplicateIds(beam.PTransform):
  """Ids of every row -> one tally pair per id that more than one row has (distinct inputs sharing an id)."""

  def expand(self, ids):
    return (ids
            | 'Ids' >> beam.Map(lambda row_id: (row_id, 1))
            | 'PerId' >> beam.CombinePerKey(sum)
            | 'Shared' >> beam.FlatMap(lambda kv: [(DUPLICATE_IDS, 1)] if kv[1] > 1 else []))


class Tally(beam.PTransform):
  """(key, count) pairs, from several PCollections -> (key, total) pairs."""

  def expand(self, pairs):
    return (pairs
            | 'AllPairs' >> beam.Flatten()
            | 'Sum' >> beam.CombinePerKey(sum))


def accounting(tally: Dict[str, int]) -> dict:
  """The summary's counts; 'accounted' says whether every record read is a row or an error row, and every
  input was read ('unread' lists what storage would not give)."""
  errors = {k[len(ERRORS_PREFIX):]: v for k, v in sorted(tally.items()) if k.startswith(ERRORS_PREFIX)}
  summary = {
      'records_read': tally.get(READ, 0),
      'rows_written': tally.get(ROWS, 0),
      'errors': sum(errors.values()),
      'errors_by_stage': errors,
      'duplicate_ids': tally.get(DUPLICATE_IDS, 0),
  }
  summary['accounted'] = summary['records_read'] == summary['rows_written'] + summary['errors']
  unread = sorted(k[len(UNREAD_PREFIX):] for k in tally if k.startswith(UNREAD_PREFIX))
  if unread:
    summary['unread'] = unread
    summary['accounted'] = False
  if any(k in tally for k in RESUMED):
    summary['resumed'] = {k: tally.get(k, 0) for k in RESUMED}
  return summary
