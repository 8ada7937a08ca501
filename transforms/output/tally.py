"""The job's exact accounting, summed from the committed units' markers (markers.py).

Beam's metrics may count a retried bundle twice; a unit's marker is written
once per committed unit and the job keeps one marker per unit (a failed
attempt's outputs are discarded by the runner), so the counts that decide
`accounted` are the markers' counts, turned into (key, count) pairs and summed
in a shuffle. The commit step reads the sums as a side input.
"""
import collections
import hashlib
from typing import Dict, Iterable, List, Tuple

import apache_beam as beam
import numpy as np

READ, ROWS, DUPLICATE_IDS = 'records_read', 'rows_written', 'duplicate_ids'
SKIPPED_UNITS, SKIPPED_RECORDS = 'skipped_units', 'skipped_records'  # committed by earlier runs (--resume)
REDONE_UNITS, REDONE_RECORDS = 'redone_units', 'redone_records'  # read by a resumed run
RESUMED = (SKIPPED_UNITS, SKIPPED_RECORDS, REDONE_UNITS, REDONE_RECORDS)
ERRORS_PREFIX = 'errors/'
ID_BUCKETS = 256  # duplicate ids are counted per bucket (a digest's first byte): a unit gives at most this many
UNREAD_PREFIX = 'unread/'  # + what storage would not give after retries (transforms/read/retry.py)
STOPPED_PREFIX = 'stopped/'  # + where a file's reading broke off, the records after it uncounted
SKIPPED_FILES_PREFIX, SKIPPED_EXAMPLE_PREFIX = 'skipped_files/', 'skipped_example/'  # + extension; + a path
SKIPPED_EXAMPLES = 5  # paths the summary shows of the files the inputs' listing left out
COUNTS_PREFIX = 'counts/'  # + what a reader noted, 'NAME/KEY' (transforms/read/outcomes.py): summary[NAME][KEY]


def marker_counts(marker: dict, skipped: bool = False, resumed: bool = False) -> Iterable[Tuple[str, int]]:
  """A committed unit's tally pairs; `skipped`: committed earlier; `resumed`: read by a resumed run."""
  yield READ, marker['records']
  yield ROWS, marker['rows']
  for stage, count in marker['errors_by_stage'].items():
    yield ERRORS_PREFIX + stage, count
  for location in marker['unread']:
    yield UNREAD_PREFIX + location, 1
  for location in marker.get('stopped', ()):  # markers of earlier versions have none
    yield STOPPED_PREFIX + location, 1
  for key, count in marker.get('counts', {}).items():
    yield COUNTS_PREFIX + key, count
  if skipped:
    yield SKIPPED_UNITS, 1
    yield SKIPPED_RECORDS, marker['records']
  elif resumed:
    yield REDONE_UNITS, 1
    yield REDONE_RECORDS, marker['records']


def skipped_file_counts(skipped: tuple) -> Iterable[Tuple[str, int]]:
  """A listing shard's (extension, count, a few paths) of the files it left out: tally pairs."""
  ext, count, examples = skipped
  yield SKIPPED_FILES_PREFIX + ext, count
  for path in examples:
    yield SKIPPED_EXAMPLE_PREFIX + path, 1


def id_buckets(ids: Iterable[str]) -> Iterable[Tuple[int, bytes]]:
  """A unit's ids as (bucket, their 8-byte digests packed in one bytes): a few hundred elements per unit, not
  one per row, and 8 bytes per row in whatever holds the grouping (the local runner holds it in memory)."""
  buckets: Dict[int, List[bytes]] = collections.defaultdict(list)
  for row_id in ids:
    digest = hashlib.blake2b(row_id.encode('utf-8', 'surrogateescape'), digest_size=8).digest()
    buckets[digest[0] % ID_BUCKETS].append(digest)
  return [(bucket, b''.join(digests)) for bucket, digests in buckets.items()]


def _shared(bucket: Tuple[int, Iterable[bytes]]) -> Iterable[Tuple[str, int]]:
  digests = np.frombuffer(b''.join(bucket[1]), dtype='<u8')
  _, counts = np.unique(digests, return_counts=True)
  shared = int(np.count_nonzero(counts > 1))
  return [(DUPLICATE_IDS, shared)] if shared else []


class DuplicateIds(beam.PTransform):
  """(bucket, digests) of every row's id -> a tally pair counting the ids that more than one row has (distinct
  inputs sharing an id; by 64-bit digests: at 10^8 ids, a false match has odds of about 1 in 3,000). A
  GroupByKey, not a combine: Beam's combiner lifting would keep a table of up to a million ids in each
  worker; here a worker holds one bucket's digests at a time (1/256 of them, 8 bytes each)."""

  def expand(self, buckets):
    return (buckets
            | 'ByBucket' >> beam.GroupByKey()
            | 'Shared' >> beam.FlatMap(_shared))


class Tally(beam.PTransform):
  """(key, count) pairs, from several PCollections -> (key, total) pairs."""

  def expand(self, pairs):
    return (pairs
            | 'AllPairs' >> beam.Flatten()
            | 'Sum' >> beam.CombinePerKey(sum))


def accounting(tally: Dict[str, int]) -> dict:
  """The summary's counts; 'accounted' says whether every record read is a row or an error row, and every
  input was read ('unread' lists what storage would not give; 'stopped', where a damaged file could be read no
  further, so that how many records it held is unknown)."""
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
  stopped = sorted(k[len(STOPPED_PREFIX):] for k in tally if k.startswith(STOPPED_PREFIX))
  if stopped:  # a damaged shard: its records after that place were never counted
    summary['stopped'] = stopped
    summary['accounted'] = False
  skipped = {k[len(SKIPPED_FILES_PREFIX):]: v for k, v in sorted(tally.items()) if k.startswith(SKIPPED_FILES_PREFIX)}
  if skipped:  # not inputs of the job's formats: not records, so not part of `accounted`, but never unsaid
    summary['skipped_files'] = skipped
    summary['skipped_examples'] = sorted(k[len(SKIPPED_EXAMPLE_PREFIX):] for k in tally
                                         if k.startswith(SKIPPED_EXAMPLE_PREFIX))[:SKIPPED_EXAMPLES]
  for key, count in sorted(tally.items()):  # unused tar members, passthrough values nulled: not records
    if key.startswith(COUNTS_PREFIX):
      name, _, sub = key[len(COUNTS_PREFIX):].partition('/')
      summary.setdefault(name, {})[sub] = count
  if any(k in tally for k in RESUMED):
    summary['resumed'] = {k: tally.get(k, 0) for k in RESUMED}
  return summary
