"""The Flink variant of the throughput benchmark (b_flink): the job on the project's own Flink cluster.

For the benchmark's duration, templates/flink/flink.sh starts the cluster as users start it (free ports, a
scratch run folder): a JobManager, one TaskManager with a slot per core (the same cores as the local runner
has), and the standing job server. Each run is `python -m pipeline ... $(flink.sh flags)`, as a user runs it.

The cluster's processes live across runs, so a run's cost on them is measured as the difference of their CPU
times before and after it: `cluster CPU` is the JVMs' (JobManager, TaskManager: Flink's operators, its
shuffles and the runner's side of Beam's gRPC data plane; the job server), the workers' CPU is that of the SDK
worker processes the TaskManager started for this run (Python: reading, decoding, the model, writing), forked
by its worker pool (templates/flink/worker_pool.py), whose imports are paid once, when the cluster starts.
"""
import contextlib
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
from typing import Iterator, List, Optional, Set

import psutil

from benchmarks import gcs_server, shared

FLINK_SH = shared.ROOT / 'templates' / 'flink' / 'flink.sh'
POOL_PIDS = 'sdk-pool-tm-*.pid'  # flink.sh's worker pools: their forks are SDK workers, they are not the cluster


class Cluster:
  """The running cluster: the job's flags and the JVMs whose CPU a run spends."""

  def __init__(self, run_dir: pathlib.Path, flags: List[str]):
    self.run_dir, self.flags = run_dir, flags

  def jvms(self) -> List[psutil.Process]:
    processes = []
    for pid_file in set(self.run_dir.glob('*.pid')) - set(self.run_dir.glob(POOL_PIDS)):
      for pid in pid_file.read_text().split():
        with contextlib.suppress(psutil.Error):
          processes.append(psutil.Process(int(pid)))
    return processes

  def taskmanagers(self) -> List[psutil.Process]:
    return [p for p in self.jvms() if 'TaskManagerRunner' in ' '.join(_cmdline(p))]

  def workers(self) -> List[psutil.Process]:
    """The SDK worker processes the TaskManagers have started (and not yet stopped): their children, and the
    forks of their worker pools."""
    found = []
    for parent in self.taskmanagers() + self._pools():
      with contextlib.suppress(psutil.Error):
        found += parent.children(recursive=True)
    return found

  def _pools(self) -> List[psutil.Process]:
    pools = []
    for pid_file in self.run_dir.glob(POOL_PIDS):
      with contextlib.suppress(psutil.Error, ValueError):
        pools.append(psutil.Process(int(pid_file.read_text().split()[-1])))
    return pools

  def worker_pids(self) -> Set[int]:
    return {p.pid for p in self.workers()}

  def cluster_cpu(self) -> float:
    total = 0.0
    for process in self.jvms():
      with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        total += times.user + times.system
    return total


def _cmdline(process: psutil.Process) -> List[str]:
  try:
    return process.cmdline()
  except psutil.Error:
    return []


ACTIVE: Optional[Cluster] = None  # the cluster of the running benchmark, when it has a Flink variant


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
  """Starts the project's cluster on free ports with one TaskManager of a slot per core; stops it after."""
  global ACTIVE  # pylint: disable=global-statement
  run_dir = pathlib.Path(tempfile.mkdtemp(prefix='bench_flink_'))
  env = dict(os.environ, PYTHON=sys.executable, FLINK_RUN_DIR=str(run_dir), FLINK_TASKMANAGERS='1',
             FLINK_SLOTS=str(os.cpu_count()),
             **{f'FLINK_{name}_PORT': str(gcs_server.free_port()) for name in ('REST', 'RPC', 'JOB', 'ARTIFACT', 'EXPANSION')})

  def flink_sh(command: str) -> str:
    return subprocess.run(['bash', str(FLINK_SH), command], env=env, check=True, capture_output=True,
                          text=True).stdout

  try:
    flink_sh('start')
    ACTIVE = Cluster(run_dir, shlex.split(flink_sh('flags')))
    yield ACTIVE
  finally:
    ACTIVE = None
    flink_sh('stop')
