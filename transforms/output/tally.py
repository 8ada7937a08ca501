"""The job's exact accounting: every record read is counted once, as a row, an error row or a skip.

Beam's metrics may count a retried bundle twice, so the counts that decide
`accounted` are computed by the job itself: each counted element becomes a
tally key, and the keys are summed in a shuffle. The commit step reads the
sums as a side input and checks the written shards against them.
"""
from typing import Dict

import apache_beam as beam

from transforms.output.layout import ERRORS_DIR, PREDICTIONS_DIR

READ, ROWS, SKIPPED, CARRIED, DUPLICATE_IDS = ('records_read', 'rows_written', 'skipped_as_done', 'carried',
                                               'duplicate_ids')
ERRORS_PREFIX = 'errors/'
UNREAD_PREFIX = 'unread/'  # + what storage would not give after retries (transforms/read/retry.py)


def count_as(pcoll, label: str, key) -> beam.PCollection:
  """Each element of pcoll as its tally key (a string, or a function of the element)."""
  return pcoll | label >> beam.Map(key if callable(key) else (lambda _, key=key: key))


def unread_key(location: str) -> str:
  return UNREAD_PREFIX + location


def error_key(error_row: dict) -> str:
  return ERRORS_PREFIX + error_row['stage']


class DuplicateIds(beam.PTransform):
  """Rows -> one tally key per id that more than one row has (distinct inputs that share an id)."""

  def expand(self, rows):
    return (rows
            | 'Ids' >> beam.Map(lambda row: (row['id'], 1))
            | 'PerId' >> beam.CombinePerKey(sum)
            | 'Shared' >> beam.FlatMap(lambda kv: [DUPLICATE_IDS] if kv[1] > 1 else []))


class Tally(beam.PTransform):
  """Tally keys (one per thing counted, from several PCollections) -> (key, count) pairs."""

  def expand(self, keys):
    return (keys
            | 'AllKeys' >> beam.Flatten()
            | 'One' >> beam.Map(lambda key: (key, 1))
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
  if any(k == SKIPPED or k.startswith(CARRIED) for k in tally):
    summary['resumed'] = {'skipped_as_done': tally.get(SKIPPED, 0),
                          'carried_rows': tally.get(f'{CARRIED}/{PREDICTIONS_DIR}', 0),
                          'carried_errors': tally.get(f'{CARRIED}/{ERRORS_DIR}', 0)}
  return summary
