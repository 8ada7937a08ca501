"""Where everything lives under --output; small and picklable, it travels with the job's steps.

  job.json               written first by every launch: the options that shape the rows, and a digest
                         of the model's files (a changed model shows there)
  predictions/, errors/  the datasets, one Parquet part per committed read unit and dataset,
                         part-UNITKEY-ATTEMPT.parquet (transforms/output/write_units.py): complete only when
                         summary.json exists
  _units/UNITKEY-ATTEMPT.json  a unit's marker, its commit point: its counts and the parts that hold its rows
                         (per attempt, like the parts: an attempt a failover cancelled never overwrites
                         the one the job kept)
  manifest.json          written by the commit before summary.json: the parts each dataset keeps
  transform/             with --analyze_embeddings (transforms/analyze)
  _unit_parts/predictions/  with --analyze_embeddings: the units' prediction parts, before the analysis
                         adds its columns and writes predictions/ (through _staging/RUN/)
  summary.json           written last, by the job's own final step: while it is absent, the datasets
                         are not complete (a run is going on, or crashed)
  _lease.json            while a run goes on: which run holds the output, and its last heartbeat (lease.py)

Names starting with '_' are skipped by pyarrow, pandas and Spark when they read a dataset folder, and so
are the parts being written (_inprogress-...): a reader of predictions/ never meets a half-written file.
"""
import os
import uuid
from typing import List, NamedTuple, Tuple

from transforms.output.files import join, list_files

PREDICTIONS_DIR = 'predictions'
ERRORS_DIR = 'errors'
DATASETS = (PREDICTIONS_DIR, ERRORS_DIR)
TRANSFORM_DIR = 'transform'
SUMMARY_FILE = 'summary.json'
MANIFEST_FILE = 'manifest.json'
JOB_FILE = 'job.json'
STAGING_DIR = '_staging'
UNITS_DIR = '_units'
UNIT_PARTS_DIR = '_unit_parts'
PART_PREFIX = 'part-'
IN_PROGRESS_PREFIX = '_inprogress-'
EMPTY_PART = 'part-empty.parquet'  # the commit's part for a dataset no unit has rows for: it stays readable


def new_run_id() -> str:
  return uuid.uuid4().hex[:12]


class Layout(NamedTuple):
  """Where one run writes; earlier_runs: the runs whose staging the claim found (the commit deletes it, no one
  else's); analysis: --analyze_embeddings, whose units' prediction parts wait under _unit_parts/."""
  output: str
  run_id: str
  earlier_runs: Tuple[str, ...] = ()
  analysis: bool = False

  def dataset(self, name: str) -> str:
    return join(self.output, name)

  def parts(self, name: str) -> str:
    """Where the units' parts of a dataset go."""
    if self.analysis and name == PREDICTIONS_DIR:
      return join(self.output, UNIT_PARTS_DIR, name)
    return self.dataset(name)

  @property
  def units(self) -> str:
    return join(self.output, UNITS_DIR)

  def marker(self, key: str, attempt: str = '') -> str:
    return join(self.units, marker_name(key, attempt))

  @property
  def shard_name(self) -> str:
    """The analysis' shard names carry the run's id: part-RUN-SSSSS-of-NNNNN.parquet."""
    return f'part-{self.run_id}'

  @property
  def shard_prefix(self) -> str:
    return self.shard_name + '-'

  def staging(self, name: str) -> str:
    return join(self.output, STAGING_DIR, self.run_id, name)

  @property
  def summary(self) -> str:
    return join(self.output, SUMMARY_FILE)

  @property
  def manifest(self) -> str:
    return join(self.output, MANIFEST_FILE)

  def scratch(self) -> List[str]:
    """The folders the commit deletes: this run's and the carried runs' staging."""
    runs = (self.run_id,) + tuple(r for r in self.earlier_runs if r != self.run_id)
    return [join(self.output, STAGING_DIR, run) for run in runs]


def part_name(key: str, attempt: str) -> str:
  return f'{PART_PREFIX}{key}-{attempt}.parquet'


def marker_name(key: str, attempt: str = '') -> str:
  """KEY-ATTEMPT.json; KEY.json for markers of versions before attempts had their own (marker_key reads both)."""
  return f'{key}-{attempt}.json' if attempt else f'{key}.json'


def marker_key(name: str) -> str:
  return name[:-len('.json')].split('-', 1)[0]


def run_folders(output: str) -> Tuple[str, ...]:
  """The run ids that have a folder (or, on GCS, objects) under _staging/."""
  runs = set()
  base = join(output, STAGING_DIR).rstrip('/') + '/'
  if '://' not in base and os.path.isdir(base):  # local folders, empty ones too
    runs.update(os.listdir(base))
  for path in list_files(join(output, STAGING_DIR, '*')) + list_files(join(output, STAGING_DIR, '**')):
    if path.startswith(base) and path[len(base):].split('/')[0]:
      runs.add(path[len(base):].split('/')[0])
  return tuple(sorted(runs))
