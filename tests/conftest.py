"""Shared fixtures: a TF-Hub cache holding the shared modules, a GCS emulator, a Flink cluster, Airflow, and a
way to run the job."""
import os
import pathlib
from typing import List, NamedTuple, Optional

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests import airflow_env, datagen, flink, gcs, keras_models

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Fixtures that start a real server or cluster (or Airflow): a test using them, even through another fixture, is in
# the full tier (marker `full`, pytest.ini), left out of the fast one (-m "not full").
FULL_TIER_FIXTURES = frozenset({'gcs_emulator', 'flink_flags', 'airflow'})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
  for item in items:
    if FULL_TIER_FIXTURES & set(getattr(item, 'fixturenames', ())):
      item.add_marker(pytest.mark.full)


@pytest.fixture(scope='session', autouse=True)
def hub_cache(tmp_path_factory) -> pathlib.Path:
  """Real handles resolve offline, exactly as for a user who downloaded them before."""
  cache = datagen.populate_hub_cache(tmp_path_factory.mktemp('tfhub_cache'))
  previous = os.environ.get('TFHUB_CACHE_DIR')
  os.environ['TFHUB_CACHE_DIR'] = str(cache)  # worker processes inherit it
  yield cache
  if previous is None:
    os.environ.pop('TFHUB_CACHE_DIR', None)
  else:
    os.environ['TFHUB_CACHE_DIR'] = previous


@pytest.fixture(scope='session')
def keras_files(tmp_path_factory) -> dict:
  """.keras files made from the shared weights: 'imagenet' (1000 classes) and 'fine_tuned' (3 classes)."""
  return keras_models.make(tmp_path_factory.mktemp('keras'))


@pytest.fixture(scope='session')
def gcs_emulator():
  """A GCS emulator for the session; gs:// paths of this process and its children go to it."""
  with gcs.emulator() as host:
    yield host


@pytest.fixture(scope='session')
def flink_flags(hub_cache, tmp_path_factory) -> List[str]:
  """A standalone Flink cluster for the session (tests/flink.py); the flags that run the job on it."""
  with flink.cluster(tmp_path_factory.mktemp('flink_run'), hub_cache) as flags:
    yield flags


@pytest.fixture(name='airflow', scope='module')
def airflow_fixture(tmp_path_factory) -> airflow_env.Airflow:
  """Airflow from its own virtualenv in a fresh AIRFLOW_HOME with SQLite and the DAG files (tests/airflow_env.py)."""
  return airflow_env.fresh_home(tmp_path_factory.mktemp('airflow_home'))


class JobResult(NamedTuple):
  summary: dict
  predictions: pa.Table
  errors: pa.Table
  output: pathlib.Path


def read_dataset(path: pathlib.Path) -> pa.Table:
  return pq.read_table(str(path))


def run_job(output: pathlib.Path, args: List[str], runner_args: Optional[List[str]] = None) -> JobResult:
  """Runs the job in-process on the local runner and reads back what it wrote; without the run report (about
  a second per run) unless args ask for it with --report."""
  from pipeline import run  # pylint: disable=import-outside-toplevel
  summary = run.run(['--output', str(output), '--noreport'] + args + (runner_args or []))
  return JobResult(summary, read_dataset(output / 'predictions'), read_dataset(output / 'errors'), output)


@pytest.fixture(name='run_job')
def run_job_fixture():
  return run_job
