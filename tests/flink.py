"""A real standalone Flink cluster for tests, started by templates/flink/flink.sh as templates/flink/README.md
tells users (Flink and the job server are cached outside the project): a JobManager, two TaskManagers of one
slot each (two nodes' worth, on this machine's two cores), their SDK workers and the standing job server."""
import contextlib
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from typing import Dict, Iterator, List, Optional

from pipeline import live_progress
from tests import datagen, gcs

FLINK_SH = datagen.ROOT / 'templates' / 'flink' / 'flink.sh'
TASKMANAGERS = 2


def _flink_sh(args: List[str], env: dict, timeout: int) -> str:
  proc = subprocess.run(['bash', str(FLINK_SH)] + args, env=env, capture_output=True, text=True,
                        timeout=timeout, check=False)
  assert proc.returncode == 0, f'flink.sh {" ".join(args)} failed:\n{proc.stderr[-4000:]}'
  return proc.stdout


def _get(url: str):
  with urllib.request.urlopen(url, timeout=30) as response:
    return json.load(response)


class Cluster:
  """The running cluster: its job flags, its REST API, and its TaskManagers as processes (to kill one)."""

  def __init__(self, run_dir: pathlib.Path, env: dict):
    self.run_dir, self.env = run_dir, env
    self.rest = f'http://localhost:{env["FLINK_REST_PORT"]}'
    self.flags: List[str] = []

  def taskmanager_pid(self, i: int) -> int:
    return int((self.run_dir / f'flink-tm-{i}-taskexecutor.pid').read_text().split()[-1])

  def start_taskmanager(self, i: int) -> None:
    """Starts TaskManager i again (after it was killed), as `flink.sh taskmanager I` does for users."""
    _flink_sh(['taskmanager', str(i)], self.env, timeout=120)

  def wait_for_taskmanagers(self, count: int = TASKMANAGERS, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(_get(f'{self.rest}/taskmanagers')['taskmanagers']) != count:
      assert time.monotonic() < deadline, f'Flink has not {count} TaskManagers after {timeout} s'
      time.sleep(0.5)

  def job(self, name: str) -> dict:
    """The newest Flink job of that name, with its details."""
    jobs = [j for j in _get(f'{self.rest}/jobs/overview')['jobs'] if j['name'] == name]
    assert jobs, f'no Flink job named {name}'
    return _get(f'{self.rest}/jobs/{max(jobs, key=lambda j: j["start-time"])["jid"]}')

  def failures(self, jid: str) -> List[str]:
    """The job's failures, recovered from or not, as stack traces (its exception history, kept after it ends)."""
    return [entry['stacktrace'] for entry in _get(f'{self.rest}/jobs/{jid}/exceptions')['exceptionHistory']['entries']]

  def reads_by_worker(self, jid: str) -> Dict[str, int]:
    """records_read_by_worker as the job's Beam metrics in Flink hold them: 'host:pid' -> records read."""
    return live_progress.flink_counters(self.rest, jid, 'records_read_by_worker')

  def pool_pid(self, i: int) -> int:
    """The pid of TaskManager i's worker pool (templates/flink/worker_pool.py)."""
    return int((self.run_dir / f'sdk-pool-tm-{i}.pid').read_text().split()[-1])

  def pooled_workers(self) -> Dict[int, str]:
    """SDK worker pid -> the TaskManager it was forked for, from the pools' lines in the workers' logs."""
    forked = {}
    for log in (self.run_dir / 'log').glob('sdk-workers-tm-*.log'):
      for found in re.finditer(r'forked worker pid (\d+) for (\S+)', log.read_text(errors='replace')):
        forked[int(found.group(1))] = found.group(2)
    return forked

  def worker_taskmanagers(self) -> Dict[int, str]:
    """SDK worker pid -> the TaskManager that started it, from the workers' logs (sdk_worker.sh writes them)."""
    owners = {}
    for log in (self.run_dir / 'log').glob('sdk-workers-tm-*.log'):
      for line in log.read_text(errors='replace').splitlines():
        if ': SDK worker pid ' in line:
          taskmanager, rest = line.split(': SDK worker pid ', 1)
          owners[int(rest.split(':', 1)[0])] = taskmanager.rsplit(' ', 1)[-1]
    return owners


RUNNING: Optional[Cluster] = None  # the session's cluster, for tests that act on its nodes


@contextlib.contextmanager
def cluster(run_dir: pathlib.Path, tfhub_cache: pathlib.Path) -> Iterator[List[str]]:
  """A fresh cluster on free ports (a developer's own cluster on 8081 stays untouched); yields job flags."""
  global RUNNING  # pylint: disable=global-statement
  # PYTHONPATH: the SDK workers import this checkout's code, not whatever checkout the venv installs (a git
  # worktree's tests would otherwise run the main checkout's transforms on the workers).
  path = os.pathsep.join(p for p in (str(datagen.ROOT), os.environ.get('PYTHONPATH')) if p)
  env = dict(os.environ, PYTHON=sys.executable, FLINK_RUN_DIR=str(run_dir), TFHUB_CACHE_DIR=str(tfhub_cache),
             PYTHONPATH=path,
             FLINK_TASKMANAGERS=str(TASKMANAGERS), FLINK_SLOTS='1',
             **{f'FLINK_{name}_PORT': str(gcs.free_port()) for name in ('REST', 'RPC', 'JOB', 'ARTIFACT',
                                                                         'EXPANSION')})
  running = Cluster(run_dir, env)
  try:
    _flink_sh(['start'], env, timeout=1800)  # the first run on a machine downloads and builds
    running.flags = shlex.split(_flink_sh(['flags'], env, timeout=600))
    RUNNING = running
    yield running.flags
  finally:
    RUNNING = None
    _flink_sh(['stop'], env, timeout=120)
