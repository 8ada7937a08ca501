"""Airflow in its own virtualenv beside the project's (its pins would fight Beam's), installed once, reused; and
a fresh AIRFLOW_HOME with the DAG files to run it in.

`python -m tests.airflow_env` installs it (a separate, timed step of .ci/run); the Airflow tests call
ensure(), which reinstalls only when templates/airflow/requirements.txt or constraints.txt changed.
"""
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, NamedTuple, Tuple

from tests.datagen import ROOT

TEMPLATE = ROOT / 'templates' / 'airflow'
DAG_FILES = (TEMPLATE / 'image_inference_dags.py', TEMPLATE / 'image_inference_operator.py')
REQUIREMENTS = TEMPLATE / 'requirements.txt'
CONSTRAINTS = TEMPLATE / 'constraints.txt'
VENV = ROOT / '.venv-airflow'
STOP_SECONDS = 120  # for a task stopped after a failed test to stop its job (its operator's grace is 60 s)


def _digest() -> str:
  return hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()


def ensure() -> pathlib.Path:
  """The Airflow virtualenv's bin directory, installed from the pinned requirements if not already."""
  stamp = VENV / 'installed.sha256'
  digest = _digest()
  if stamp.is_file() and stamp.read_text() == digest:
    return VENV / 'bin'
  subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
  pip = str(VENV / 'bin' / 'pip')
  subprocess.run([pip, 'install', '-q', '-r', str(REQUIREMENTS), '-c', str(CONSTRAINTS)], check=True)
  stamp.write_text(digest)
  return VENV / 'bin'


class Started(NamedTuple):
  """An airflow command started in a session of its own, its output (the task's log too) going to a file."""
  proc: subprocess.Popen
  log: pathlib.Path

  def output(self) -> str:
    return self.log.read_text(errors='replace')

  def __enter__(self) -> 'Started':
    return self

  def __exit__(self, *_) -> None:
    """Stops the command if it still runs (a test failed): SIGTERM to its process group, as Airflow stops a task
    (the task cancels its job), then SIGKILL to what is left after STOP_SECONDS."""
    if self.proc.poll() is None:
      os.killpg(self.proc.pid, signal.SIGTERM)
      try:
        self.proc.wait(timeout=STOP_SECONDS)
      except subprocess.TimeoutExpired:
        pass
    try:
      os.killpg(self.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass
    self.proc.wait()

  def finish(self, timeout: float) -> subprocess.CompletedProcess:
    """Waits for the command; stops it (see __exit__) and fails if it is still running after timeout."""
    try:
      self.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.__exit__()
      raise AssertionError(f'{" ".join(self.proc.args)} still running after {timeout}s:\n'
                           f'{self.output()[-5000:]}') from None
    return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, self.output())


class Airflow(NamedTuple):
  bin: pathlib.Path
  env: Dict[str, str]
  home: pathlib.Path

  def _env(self, settings: Dict[str, str]) -> Dict[str, str]:
    return dict(self.env, **{f'IMAGE_INFERENCE_{k.upper()}': v for k, v in settings.items()})

  def start(self, args: List[str], **settings: str) -> Started:
    """Starts an airflow command; settings become IMAGE_INFERENCE_* variables."""
    fd, log = tempfile.mkstemp(prefix=f'{"-".join(args[:2])}-', suffix='.log', dir=self.home)
    with os.fdopen(fd, 'w') as out:
      proc = subprocess.Popen([str(self.bin / 'airflow')] + args, env=self._env(settings), stdout=out,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return Started(proc, pathlib.Path(log))

  def run(self, args: List[str], timeout: float = 600, **settings: str) -> subprocess.CompletedProcess:
    """Runs an airflow command (see start); kills its tree and fails on timeout."""
    with self.start(args, **settings) as started:
      return started.finish(timeout)

  def python(self, code: str, **settings: str) -> str:
    """Runs Python in Airflow's environment, the DAG files' folder on sys.path; returns the last line it
    printed (Airflow logs to stdout too)."""
    env = dict(self._env(settings), PYTHONPATH=str(self.home / 'dags'))
    proc = subprocess.run([str(self.bin / 'python'), '-c', code], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stdout.strip().splitlines()[-1]


def fresh_home(home: pathlib.Path) -> Airflow:
  """Airflow (installed if need be) with AIRFLOW_HOME `home`: a migrated SQLite DB, the DAG files in its dags
  folder, no IMAGE_INFERENCE_* setting but those a command passes."""
  bin_dir = ensure()
  (home / 'dags').mkdir()
  for path in DAG_FILES:
    shutil.copy(path, home / 'dags')
  env = {k: v for k, v in os.environ.items() if not k.startswith(('AIRFLOW', 'IMAGE_INFERENCE_'))}
  env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(home / 'dags'),
             AIRFLOW__CORE__LOAD_EXAMPLES='False')
  airflow = Airflow(bin_dir, env, home)
  for args in (['db', 'migrate'], ['dags', 'reserialize']):
    proc = airflow.run(args)
    assert proc.returncode == 0, proc.stdout[-5000:]
  return airflow


def flink_settings(flink_flags: List[str]) -> Tuple[str, str]:
  """The Beam DAG's flink_master param and IMAGE_INFERENCE_FLINK_OPTIONS (JSON) for the job flags of
  templates/flink/flink.sh (the flink_flags fixture)."""
  flags = dict(flag[len('--'):].split('=', 1) for flag in flink_flags)
  assert flags.pop('runner') == 'FlinkRunner', flink_flags
  return flags.pop('flink_master'), json.dumps(flags)


if __name__ == '__main__':
  started = time.monotonic()
  print(f'airflow: environment ready in {ensure().parent} after {time.monotonic() - started:.0f}s')
