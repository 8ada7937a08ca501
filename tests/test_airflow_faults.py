"""The Beam DAG under the faults large jobs meet, in a real Airflow (tests/airflow_env.py): two runs of one date at
once, whose second the output's lease refuses with a task log that names the holder; and a task killed while its
job runs on a real Flink cluster, whose job is then cancelled, its output left resumable.

Both run the job over thousands of images (the shared photos and generated JPEGs, each linked under several names,
so that they cost no disk) so that it is still running when the second run starts or the kill comes.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Callable, Dict, List

import pytest

from tests import airflow_env, checks, datagen

pytestmark = pytest.mark.full

BEAM_DAG = 'image_inference_beam'
DATE = '2024-06-03'  # the runs' {{ ds }}: they write OUTPUT/2024-06-03
MODEL = datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]
GENERATED, NAMES = 500, 12  # generated JPEGs, each linked under NAMES names: 6,000 inputs, plus the photos
PER_UNIT = 100  # --files_per_unit of the Flink kill test: about 60 units, some committed early
CANCELLED_WITHIN = 90  # seconds from the kill: the launcher's grace (STOP_GRACE_SECONDS, 60 s), then Flink's REST API


@pytest.fixture(scope='module', name='images')
def images_fixture(tmp_path_factory):
  folder = tmp_path_factory.mktemp('airflow_images')
  for path in datagen.photo_paths():
    shutil.copy(path, folder / path.name)
  for path in datagen.make_jpegs(folder / 'generated', GENERATED, seed=11):
    for name in range(1, NAMES):
      os.link(path, path.with_name(f'{path.stem}_{name}.jpg'))
  return folder


def _job(images) -> Dict[str, str]:
  """The DAG's params for a run over the images (its output param set by each test)."""
  return {'input': str(images), 'model': str(MODEL), 'labels_file': str(datagen.LABELS), 'task': 'both'}


@pytest.fixture(scope='module', name='clean')
def clean_fixture(images, tmp_path_factory):
  """The output of one clean run of the same job, launched by hand on the DirectRunner."""
  out = tmp_path_factory.mktemp('airflow_clean') / 'out'
  args = [f'--{name}={value}' for name, value in _job(images).items()]
  proc = subprocess.run([sys.executable, '-m', 'pipeline', f'--output={out}'] + args, capture_output=True,
                        text=True, timeout=900, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout)['rows_written'] == len(datagen.photo_paths()) + GENERATED * NAMES
  return out


def _wait(what: str, done: Callable[[], bool], task: airflow_env.Started, timeout: float) -> None:
  """Waits until done() while the task runs; fails, with its log, if it ends first or timeout passes."""
  deadline = time.monotonic() + timeout
  while not done():
    assert task.proc.poll() is None, f'the task ended before {what}:\n{task.output()[-5000:]}'
    assert time.monotonic() < deadline, f'no {what} after {timeout} s:\n{task.output()[-5000:]}'
    time.sleep(0.5)


def _dag_test(airflow, logical_date: str, conf: dict, **settings: str) -> airflow_env.Started:
  """Starts a run of the Beam DAG (`airflow dags test`); the model given is the deployment's allowed one."""
  return airflow.start(['dags', 'test', BEAM_DAG, logical_date, '-c', json.dumps(conf)], python=sys.executable,
                       model=str(MODEL), retries='0', **settings)


def test_overlapping_runs_of_one_date_are_refused_by_the_lease(airflow, images, clean, tmp_path):
  """A run of the day starts while another runs (a manual trigger, a second deployment, a task whose worker lost
  touch with Airflow): its task fails, to be retried, its log naming the run that holds the output; the first
  ends with a clean run's output. A refusal no retry changes (other options) fails without retries."""
  conf = dict(_job(images), output=str(tmp_path / 'out'))
  out, one_worker = tmp_path / 'out' / DATE, json.dumps({'direct_num_workers': 1})  # a slower first run
  with _dag_test(airflow, f'{DATE}T00:00:00+00:00', conf, beam_options=one_worker) as first:
    lease = out / '_lease.json'
    _wait("the first run's lease", lease.exists, first, timeout=300)
    holder = json.loads(lease.read_text())['run_id']
    with _dag_test(airflow, f'{DATE}T12:00:00+00:00', conf, beam_options=one_worker) as started:
      second = started.finish(timeout=600)
    assert first.proc.poll() is None, 'the first run ended before the second was refused: it needs more images'
    done = first.finish(timeout=900)
  assert f'error: --output {out} is in use by run {holder} on host ' in second.stdout, second.stdout[-5000:]
  assert ('AirflowException: the job refused to start (exit code 2), to be retried: --output '
          f'{out} is in use by run {holder}') in second.stdout  # the task's failure says it, not just the job's log
  assert 'state=failed' in second.stdout and 'AirflowFailException' not in second.stdout

  assert 'Process exited with return code: 0' in done.stdout and 'state=success' in done.stdout, done.stdout[-5000:]
  checks.assert_same_output(out, clean)
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['accounted'] and summary['rows_written'] == len(datagen.photo_paths()) + GENERATED * NAMES
  assert 'resumed' not in summary and not lease.exists()  # one run wrote it all, and let go of it

  with _dag_test(airflow, f'{DATE}T18:00:00+00:00', dict(conf, task='classify')) as started:
    other = started.finish(timeout=600)
  assert ('AirflowFailException: the job refused to start (exit code 2), not retried: --resume: '
          f'{out} was written with other options') in other.stdout, other.stdout[-5000:]
  assert json.loads((out / 'summary.json').read_text()) == summary  # untouched


def _flink_jobs(flink_master: str, name: str, before=()) -> List[dict]:
  """The jobs named `name` on Flink (REST API: GET /jobs/overview) but those whose ids are in before."""
  with urllib.request.urlopen(f'http://{flink_master}/jobs/overview', timeout=10) as response:
    return [job for job in json.load(response)['jobs'] if job['name'] == name and job['jid'] not in before]


def test_killed_flink_task_cancels_its_job_and_resume_finishes_it(airflow, flink_flags, images, clean, tmp_path):
  """SIGTERM to the task's process, as Airflow kills a task (a timeout, a cleared or marked-failed task): the Flink
  job is CANCELED (Flink's REST API says so) within CANCELLED_WITHIN s, the output is incomplete (no summary.json)
  and released, and the day's next attempt (every run passes --resume), here on the DirectRunner, ends with a clean
  run's output."""
  flink_master, flink_options = airflow_env.flink_settings(flink_flags)
  name, out = f'image-inference-beam-{DATE}', tmp_path / 'out' / DATE
  before = {job['jid'] for job in _flink_jobs(flink_master, name)}  # an earlier test's, if any
  conf = dict(_job(images), output=str(tmp_path / 'out'), runner='FlinkRunner', flink_master=flink_master)
  groups = json.dumps({'files_per_unit': PER_UNIT})

  def states():
    return [job['state'] for job in _flink_jobs(flink_master, name, before)]

  with _dag_test(airflow, DATE, conf, flink_options=flink_options, beam_options=groups) as task:
    _wait('RUNNING job on Flink', lambda: states() == ['RUNNING'], task, timeout=600)
    _wait('a committed unit', lambda: list(out.glob('_units/*.json')), task, timeout=300)
    assert states() == ['RUNNING'], 'the job ended before it could be killed: it needs more images'
    task.proc.send_signal(signal.SIGTERM)  # the task's process, as Airflow's supervisor kills it
    killed = time.monotonic()
    while states() != ['CANCELED']:
      assert time.monotonic() - killed < CANCELLED_WITHIN, f'Flink job {states()} {CANCELLED_WITHIN} s after the kill'
      time.sleep(1)
    log = task.finish(timeout=300).stdout
  assert "stopped the pipeline's processes" in log and 'state=failed' in log, log[-5000:]
  assert 'the job failed (exit code 143): the job was stopped by SIGTERM' in log
  assert not (out / 'summary.json').exists()  # incomplete, and a reader can tell
  assert not (out / '_lease.json').exists()  # released by the launcher after the cancel
  committed = {path.name for path in out.glob('_units/*.json')}
  assert committed  # what the Flink job finished, kept

  with _dag_test(airflow, DATE, dict(conf, runner='DirectRunner'), beam_options=groups) as started:
    resumed = started.finish(timeout=900)
  assert 'state=success' in resumed.stdout and '--resume' in resumed.stdout, resumed.stdout[-5000:]
  summary = json.loads((out / 'summary.json').read_text())
  # Kept: at least what was committed when the job was CANCELED (its SDK workers may still finish the bundle in
  # flight, whose whole unit then counts too), and not everything: the resume read the rest.
  resumed_units = summary['resumed']
  units = len(list(out.glob('_units/*.json')))  # every unit's marker, once the output is complete
  assert summary['accounted'] and len(committed) <= resumed_units['skipped_units'] < units, resumed_units
  assert resumed_units['redone_units'] == units - resumed_units['skipped_units'] > 0
  checks.assert_same_output(out, clean)
