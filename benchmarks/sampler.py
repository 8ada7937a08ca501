"""Peak RSS and CPU time of a benchmarked command's processes, sampled every 0.1 s with psutil.

`launcher` is the command's own process; the workers are its descendants (the DirectRunner's SDK workers, the
limit's pool processes, Ray's raylet, GCS and worker processes, Spark's JVM and its Python workers) plus any
processes a variant names that are not its descendants (`more_workers`: the SDK workers a standing Flink
TaskManager starts for the run). A process's peak is the kernel's high-water mark of its resident set
(VmHWM, from /proc), its CPU time user + system; both are kept as the largest value seen, so a process that
exits between two samples keeps what the last sample read.
"""
import threading
from typing import Callable, Dict, Iterable

import psutil

SAMPLE_SECONDS = 0.1


def cpu_seconds(process: psutil.Process) -> float:
  try:
    times = process.cpu_times()
    return times.user + times.system
  except psutil.Error:
    return 0.0


def peak_rss(process: psutil.Process) -> int:
  """The process's peak resident set so far, in bytes (VmHWM; RSS where /proc lacks it)."""
  try:
    with open(f'/proc/{process.pid}/status', encoding='ascii') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
    return process.memory_info().rss
  except (OSError, psutil.Error):
    return 0


class PeakSampler(threading.Thread):
  """Peak RSS and CPU time of a command's own process and of each of its workers, sampled until `done` is set."""

  def __init__(self, pid: int, more_workers: Callable[[], Iterable[psutil.Process]] = lambda: ()):
    super().__init__(daemon=True)
    self._root = psutil.Process(pid)
    self._more_workers = more_workers
    self.launcher = 0
    self.children: Dict[int, int] = {}
    self.launcher_cpu = 0.0
    self.children_cpu: Dict[int, float] = {}
    self.names: Dict[int, str] = {}  # what each worker was (its name), for a look at who spent what
    self.done = threading.Event()

  def sample(self) -> None:
    self.launcher = max(self.launcher, peak_rss(self._root))
    self.launcher_cpu = max(self.launcher_cpu, cpu_seconds(self._root))
    try:
      workers = self._root.children(recursive=True)
    except psutil.Error:
      workers = []
    workers += list(self._more_workers())
    for worker in workers:
      self.children[worker.pid] = max(self.children.get(worker.pid, 0), peak_rss(worker))
      self.children_cpu[worker.pid] = max(self.children_cpu.get(worker.pid, 0.0), cpu_seconds(worker))
      if worker.pid not in self.names:
        try:
          self.names[worker.pid] = worker.name()
        except psutil.Error:
          pass

  def run(self):
    while not self.done.is_set():
      self.sample()
      self.done.wait(SAMPLE_SECONDS)
