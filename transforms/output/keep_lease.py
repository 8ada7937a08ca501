"""Keeping the output's lease fresh while the job runs: in the launcher and in every worker process.

The launcher refreshes it while it waits; but a Dataflow Flex Template launcher
submits the job and exits, so the workers refresh it too: without that, a job
longer than lease.STALE_AFTER_SECONDS could have its output taken over by a
--resume while it still writes. One thread per process and lease, however many
DoFn instances a worker runs; a beat reads the lease and writes only when the
heartbeat is half stale, so a thousand workers make about one write per
HEARTBEAT_SECONDS. A thread ends when the lease is no longer its run's (released
by the commit step, or taken over).
"""
import logging
import threading
from typing import Dict, Iterable, Tuple

import apache_beam as beam

from transforms.output import lease


class Heartbeat:
  """A daemon thread that beats the lease every `seconds` (writing when it is half stale) until stopped or the
  lease is gone."""

  def __init__(self, output: str, run_id: str, seconds: float = lease.HEARTBEAT_SECONDS):
    self._output, self._run_id, self._seconds = output, run_id, seconds
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, name=f'lease-heartbeat {output}', daemon=True)

  def _loop(self) -> None:
    while not self._stop.wait(self._seconds):
      try:
        if not lease.beat(self._output, self._run_id, self._seconds / 2):
          return  # released by the commit step, or taken over
      except Exception as e:  # pylint: disable=broad-except  # a missed beat is retried at the next one
        logging.warning('lease heartbeat on %s failed: %s', self._output, e)

  def alive(self) -> bool:
    return self._thread.is_alive()

  def __enter__(self) -> 'Heartbeat':
    self._thread.start()
    return self

  def __exit__(self, *unused) -> None:
    self._stop.set()
    self._thread.join(timeout=60)


_lock = threading.Lock()
_running: Dict[Tuple[str, str], Heartbeat] = {}


def keep_alive(output: str, run_id: str, seconds: float = lease.HEARTBEAT_SECONDS) -> None:
  """Starts this process's heartbeat for the run's lease, unless one runs already."""
  with _lock:
    current = _running.get((output, run_id))
    if current is None or not current.alive():
      _running[(output, run_id)] = Heartbeat(output, run_id, seconds).__enter__()


class KeepLease(beam.DoFn):
  """Passes elements through; on each worker process it runs, keeps the run's lease fresh."""

  def __init__(self, output: str, run_id: str, seconds: float = lease.HEARTBEAT_SECONDS):
    self._output, self._run_id, self._seconds = output, run_id, seconds

  def setup(self):
    keep_alive(self._output, self._run_id, self._seconds)

  def process(self, element) -> Iterable:
    yield element
