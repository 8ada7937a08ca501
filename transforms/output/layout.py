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

Names starting with '_' are skipped by pyarrow, pandas and Spark when they read a dataset folder, so a
reader of predictions/ never meets a half-written file.
"""
import uuid
from typing import Dict, List, NamedTuple

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
  """Where one run writes."""
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
    return join(self.output, SUMMARY_FILE)


def previous_files(output: str) -> Dict[str, List[str]]:
  """Every finished Parquet file earlier runs left, per dataset: committed shards, shards staged by a run that
  stopped before its commit, and checkpoints. Beam's temp files (one folder deeper) are not among them."""
  found = {}
  for name in DATASETS:
    found[name] = (list_files(join(output, name, '*.parquet'))
                   + list_files(join(output, STAGING_DIR, '*', name, '*.parquet'))
                   + list_files(join(output, CHECKPOINTS_DIR, '*', name, '*.parquet')))
  return found
