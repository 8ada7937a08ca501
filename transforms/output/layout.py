"""Where everything lives under --output; small and picklable, it travels with the job's steps.

  job.json               written first by every launch: the options that shape the rows, and a digest
                         of the model's files (a changed model shows there)
  predictions/, errors/  the datasets: only the shards of a run that finished are moved here
  transform/             with --analyze_embeddings (transforms/analyze)
  summary.json           written last, by the job's own final step: while it is absent, the datasets
                         are not complete (a run is going on, or crashed)
  _staging/RUN/          where the run's Beam writes put their shards (Beam's temp files included)
  _checkpoints/RUN/      rows committed every few thousand as the run goes, so that --resume can skip
                         them after a crash (output/resume.py)
  _lease.json            while a run goes on: which run holds the output, and its last heartbeat (lease.py)

Names starting with '_' are skipped by pyarrow, pandas and Spark when they read a dataset folder, so a
reader of predictions/ never meets a half-written file.
"""
import os
import uuid
from typing import Dict, List, NamedTuple, Tuple

from transforms.output.files import join, list_files

PREDICTIONS_DIR = 'predictions'
ERRORS_DIR = 'errors'
DATASETS = (PREDICTIONS_DIR, ERRORS_DIR)
TRANSFORM_DIR = 'transform'
SUMMARY_FILE = 'summary.json'
JOB_FILE = 'job.json'
STAGING_DIR = '_staging'
CHECKPOINTS_DIR = '_checkpoints'


def new_run_id() -> str:
  return uuid.uuid4().hex[:12]


class Layout(NamedTuple):
  """Where one run writes; earlier_runs: the runs whose staging and checkpoints the claim found (with
  --resume, this run carries their work, and its commit deletes their scratch folders, no one else's)."""
  output: str
  run_id: str
  earlier_runs: Tuple[str, ...] = ()

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
    return join(self.output, SUMMARY_FILE)

  def scratch(self) -> List[str]:
    """The folders the commit deletes: this run's and the carried runs' staging and checkpoints."""
    runs = (self.run_id,) + tuple(r for r in self.earlier_runs if r != self.run_id)
    return [join(self.output, top, run) for top in (STAGING_DIR, CHECKPOINTS_DIR) for run in runs]


def run_folders(output: str) -> Tuple[str, ...]:
  """The run ids that have a folder (or, on GCS, objects) under _staging/ or _checkpoints/."""
  runs = set()
  for top in (STAGING_DIR, CHECKPOINTS_DIR):
    base = join(output, top).rstrip('/') + '/'
    if '://' not in base and os.path.isdir(base):  # local folders, empty ones too
      runs.update(os.listdir(base))
    for path in list_files(join(output, top, '*')) + list_files(join(output, top, '**')):
      if path.startswith(base) and path[len(base):].split('/')[0]:
        runs.add(path[len(base):].split('/')[0])
  return tuple(sorted(runs))


def previous_files(output: str) -> Dict[str, List[str]]:
  """Every finished Parquet file earlier runs left, per dataset: committed shards, shards staged by a run that
  stopped before its commit, and checkpoints. Beam's temp files (one folder deeper) are not among them."""
  found = {}
  for name in DATASETS:
    found[name] = (list_files(join(output, name, '*.parquet'))
                   + list_files(join(output, STAGING_DIR, '*', name, '*.parquet'))
                   + list_files(join(output, CHECKPOINTS_DIR, '*', name, '*.parquet')))
  return found
