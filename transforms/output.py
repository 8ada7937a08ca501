"""The output prefix as a whole: when it is complete, and how a run claims, replaces or continues it.

Layout under --output:
  job.json               written first by every launch: the options that shape the rows, and a digest
                         of the model's files (a changed model shows there)
  predictions/, errors/  the datasets: only the shards of a run that finished are moved here
  transform/             with --analyze_embeddings (transforms/analyze.py)
  summary.json           written last, by the job's own final step: while it is absent, the datasets
                         are not complete (a run is going on, or crashed)
  _staging/RUN/          where the run's Beam writes put their shards (Beam's temp files included)
  _checkpoints/RUN/      rows committed every few thousand as the run goes, so that --resume can skip
                         them after a crash (transforms/resume.py)

Names starting with '_' are skipped by pyarrow, pandas and Spark when they read a dataset folder, so a
reader of predictions/ never meets a half-written file. The final step (Commit) runs inside the job,
after both datasets are written, so it happens on every runner, including a Dataflow template launch
whose launcher does not wait for the job.
"""
import json
import logging
import uuid
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms import write

JOB_FILE = 'job.json'
STAGING_DIR = '_staging'
CHECKPOINTS_DIR = '_checkpoints'
DATASETS = (write.PREDICTIONS_DIR, write.ERRORS_DIR)
NEW, OVERWRITE, RESUME = 'new', 'overwrite', 'resume'
MODEL_DIGEST = 'model_sha256'  # in job.json, beside the options
# Tally keys (the job's exact accounting; see Tally).
READ, ROWS, SKIPPED, CARRIED, DUPLICATE_IDS = 'records_read', 'rows_written', 'skipped_as_done', 'carried', \
    'duplicate_ids'
ERRORS_PREFIX = 'errors/'


class OutputError(ValueError):
  """An output the job must not or cannot write to; the message says what to do."""


def join(*parts: str) -> str:
  return FileSystems.join(*parts)


def new_run_id() -> str:
  return uuid.uuid4().hex[:12]


def _files(pattern: str) -> List[str]:
  return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def delete_tree(path: str) -> None:
  """Removes a folder and everything under it, if there is one (on GCS, every object under the prefix)."""
  path = path.rstrip('/')
  if FileSystems.exists(path):  # a local folder
    FileSystems.delete([path])
  if _files(join(path, '**')):  # objects under a GCS prefix
    FileSystems.delete([path + '/'])


def delete_files(paths: Sequence[str]) -> None:
  existing = [p for p in paths if FileSystems.exists(p)]
  if existing:
    FileSystems.delete(existing)


def write_text(path: str, text: str) -> None:
  """Whole or not at all: written beside, then renamed (readers never see a partial file)."""
  temp = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
  with FileSystems.create(temp) as f:
    f.write(text.encode('utf-8'))
  FileSystems.rename([temp], [path])


def read_json(path: str) -> Optional[dict]:
  if not FileSystems.exists(path):
    return None
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return json.loads(f.read().decode('utf-8'))


class Layout(NamedTuple):
  """Where one run writes; small and picklable, it travels with the job's steps."""
  output: str
  run_id: str

  def dataset(self, name: str) -> str:
    return join(self.output, name)

  @property
  def shard_name(self) -> str:
    """Shard names carry the run's id: part-RUN-SSSSS-of-NNNNN.parquet."""
    return f'part-{self.run_id}'

  @property
  def shard_prefix(self) -> str:
    return self.shard_name + '-'

  def staging(self, name: str) -> str:
    return join(self.output, STAGING_DIR, self.run_id, name)

  def checkpoints(self, name: str) -> str:
    return join(self.output, CHECKPOINTS_DIR, self.run_id, name)

  @property
  def summary(self) -> str:
    return join(self.output, write.SUMMARY_FILE)


def previous_files(output: str) -> Dict[str, List[str]]:
  """Every finished Parquet file earlier runs left, per dataset: committed shards, shards staged by a run that
  stopped before its commit, and checkpoints. Beam's temp files (one folder deeper) are not among them."""
  found = {}
  for name in DATASETS:
    found[name] = (_files(join(output, name, '*.parquet'))
                   + _files(join(output, STAGING_DIR, '*', name, '*.parquet'))
                   + _files(join(output, CHECKPOINTS_DIR, '*', name, '*.parquet')))
  return found


def _used(output: str) -> List[str]:
  """What shows that a job wrote here before."""
  used = [name for name in (JOB_FILE, write.SUMMARY_FILE) if FileSystems.exists(join(output, name))]
  used += [f'{name}/' for name in DATASETS if _files(join(output, name, '**'))]
  return used


def _differences(before: dict, now: dict) -> List[str]:
  keys = sorted(set(before) | set(now))
  return [f'{key}: {before.get(key)!r} then, {now.get(key)!r} now' for key in keys if before.get(key) != now.get(key)]


def claim(output: str, mode: str, job: dict) -> Dict[str, List[str]]:
  """Makes the output ready for a run, before any work; returns the files a resumed run carries over.

  new: refuses an output a job wrote before. overwrite: deletes it (summary.json first, so that it is
  never mistaken for complete). resume: checks that the previous run had the same options and model,
  then marks the output incomplete and lists what it finished.
  """
  used = _used(output)
  if mode == NEW and used:
    raise OutputError(f'--output {output} already holds a job\'s output ({", ".join(used)}): pass --overwrite '
                      'to replace it or --resume to continue it')
  carried = {name: [] for name in DATASETS}
  if mode == RESUME and used:
    previous = read_json(join(output, JOB_FILE)) or {}
    before = {k: v for k, v in previous.items() if k != MODEL_DIGEST}
    changed = _differences(before, {k: v for k, v in job.items() if k != MODEL_DIGEST})
    if changed:
      raise OutputError(f'--resume: {output} was written with other options ({"; ".join(changed)}); resume with '
                        'the same options, or pass --overwrite to start over')
    if previous.get(MODEL_DIGEST) != job.get(MODEL_DIGEST):
      raise OutputError(f'--resume: the model at {job.get("model")} is not the one that wrote {output} (its files '
                        'changed); pass --overwrite to start over with it')
    carried = previous_files(output)
  if used and mode in (OVERWRITE, RESUME):
    delete_files([join(output, write.SUMMARY_FILE)])  # first: from here on the output reads as incomplete
    delete_tree(join(output, write.TRANSFORM_DIR))  # analysis results are recomputed over all rows
  if mode == OVERWRITE:
    for name in DATASETS + (STAGING_DIR, CHECKPOINTS_DIR):
      delete_tree(join(output, name))
  try:
    write_text(join(output, JOB_FILE), json.dumps(job, indent=2, sort_keys=True))
  except Exception as e:  # pylint: disable=broad-except
    raise OutputError(f'cannot write to --output {output}: {e}') from e
  return carried


class Tally(beam.PTransform):
  """Exact counts for the summary, computed by the job (Beam metrics may count a retried bundle twice).

  Input: one key per thing counted. Output: (key, count) pairs.
  """

  def expand(self, keys):
    return (keys
            | 'One' >> beam.Map(lambda key: (key, 1))
            | 'Sum' >> beam.CombinePerKey(sum))


def count_as(pcoll, label: str, key) -> beam.PCollection:
  """Each element of pcoll as its tally key (a string, or a function of the element)."""
  return pcoll | label >> beam.Map(key if callable(key) else (lambda _, key=key: key))


class DuplicateIds(beam.PTransform):
  """Rows -> one tally key per id that more than one row has (distinct inputs that share an id)."""

  def expand(self, rows):
    return (rows
            | 'Ids' >> beam.Map(lambda row: (row['id'], 1))
            | 'PerId' >> beam.CombinePerKey(sum)
            | 'Shared' >> beam.FlatMap(lambda kv: [DUPLICATE_IDS] if kv[1] > 1 else []))


def accounting(tally: Dict[str, int]) -> dict:
  """The summary's counts; 'accounted' says whether every record read is a row or an error row."""
  errors = {k[len(ERRORS_PREFIX):]: v for k, v in sorted(tally.items()) if k.startswith(ERRORS_PREFIX)}
  summary = {
      'records_read': tally.get(READ, 0),
      'rows_written': tally.get(ROWS, 0),
      'errors': sum(errors.values()),
      'errors_by_stage': errors,
      'duplicate_ids': tally.get(DUPLICATE_IDS, 0),
  }
  summary['accounted'] = summary['records_read'] == summary['rows_written'] + summary['errors']
  if any(k == SKIPPED or k.startswith(CARRIED) for k in tally):
    summary['resumed'] = {'skipped_as_done': tally.get(SKIPPED, 0),
                          'carried_rows': tally.get(f'{CARRIED}/{write.PREDICTIONS_DIR}', 0),
                          'carried_errors': tally.get(f'{CARRIED}/{write.ERRORS_DIR}', 0)}
  return summary


class CommitError(RuntimeError):
  """The staged datasets do not hold what the job counted: nothing is moved, the staged shards stay."""


def count_rows(paths: Sequence[str]) -> int:
  """Rows in Parquet files, from their footers."""
  total = 0
  for path in paths:
    with FileSystems.open(path, compression_type='uncompressed') as f:
      total += pq.ParquetFile(f).metadata.num_rows
  return total


class Commit(beam.DoFn):
  """The job's last step: this run's shards replace the datasets, scratch space goes, summary.json comes last.

  It first checks that the staged shards hold exactly the rows and error rows the job tallied, and
  moves nothing otherwise. Safe to run again after a failure part-way (runners retry it): this run's
  shards carry its id, so those already moved are counted and kept, and only other files are deleted.
  """

  def __init__(self, layout: Layout):
    self._layout = layout

  def process(self, unused, tally: Dict[str, int], *unused_waits) -> Iterable[str]:
    layout = self._layout
    summary = accounting(tally)
    expected = {write.PREDICTIONS_DIR: summary['rows_written'], write.ERRORS_DIR: summary['errors']}
    staged = {}
    for name in DATASETS:
      staged[name] = _files(join(layout.staging(name), '*.parquet'))
      moved = _files(join(layout.dataset(name), layout.shard_prefix + '*'))
      found = count_rows(staged[name] + moved)
      if found != expected[name]:
        raise CommitError(f'{name}: the job counted {expected[name]} rows but its shards hold {found}; nothing '
                          f'was moved, the staged shards stay under {join(layout.output, STAGING_DIR)}')
    for name in DATASETS:
      folder = layout.dataset(name)
      ours = join(folder, layout.shard_prefix)
      delete_files([p for p in _files(join(folder, '*')) if not p.startswith(ours)])
      if staged[name]:
        if not FileSystems.exists(folder):
          FileSystems.mkdirs(folder)  # local renames need it
        FileSystems.rename(staged[name], [join(folder, p.rsplit('/', 1)[-1]) for p in staged[name]])
    delete_tree(join(layout.output, STAGING_DIR))
    delete_tree(join(layout.output, CHECKPOINTS_DIR))
    write_text(layout.summary, json.dumps(summary, indent=2, sort_keys=True))
    logging.info('output committed: %s', layout.output)
    yield layout.summary


class CommitOutput(beam.PTransform):
  """Runs Commit once, after the datasets' writes (and anything in `after`) have finished."""

  def __init__(self, layout: Layout, tally, after: Sequence):
    super().__init__()
    self._layout = layout
    self._tally = tally
    self._after = list(after)

  def expand(self, pbegin):
    waits = [beam.pvalue.AsList(pcoll) for pcoll in self._after]
    return (pbegin
            | 'Once' >> beam.Create([None])
            | 'Commit' >> beam.ParDo(Commit(self._layout), beam.pvalue.AsDict(self._tally), *waits))
