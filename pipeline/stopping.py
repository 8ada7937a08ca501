"""SIGTERM and SIGINT while the job runs: stop the job, leave the output resumable, exit non-zero.

A scheduler that kills a task (Airflow, a CI timeout, systemd) sends SIGTERM to
the launcher; a user presses Ctrl-C (SIGINT). Either way the launcher stops
what it started before it exits: a job submitted to a job service (Flink, any
portable runner) is cancelled through its result (`result.cancel()`), and the
local runner's worker processes, children of the launcher, are terminated
(killed if they do not end within a few seconds). The commit step never runs,
so there is no summary.json; the read units committed so far stay, and the
same command with --resume continues, skipping them.
The exit code is 128 + the signal's number (130 for SIGINT, 143 for SIGTERM),
as a shell reports a process killed by it.
"""
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Iterator, List

SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_SECONDS = 5  # for terminated workers to end before they are killed


class Stopped(BaseException):
  """The launcher got SIGTERM or SIGINT; the job was stopped. A BaseException, as KeyboardInterrupt is: the
  signal lands wherever the main thread is, and an `except Exception` there (a missed Flink poll in
  job_end.wait) must not swallow it and report the cancelled job as failed."""

  def __init__(self, signum: int, output: str):
    super().__init__(f'the job was stopped by {signal.Signals(signum).name}: its output {output} is incomplete (no '
                     'summary.json); run the same command with --resume to continue, keeping what it finished')
    self.signum = signum

  @property
  def exit_code(self) -> int:
    return 128 + self.signum


class Watch:
  """What a signal must stop: the submitted job's result, once there is one."""

  def __init__(self):
    self.result = None


def _children() -> List[int]:
  """Pids of this process's descendants, from Linux's /proc."""
  parents = {}
  for entry in os.listdir('/proc') if os.path.isdir('/proc') else ():
    try:
      with open(f'/proc/{entry}/stat', encoding='utf-8') as f:
        stat = f.read()
      parents[int(entry)] = int(stat.rsplit(')', 1)[1].split()[1])
    except (ValueError, OSError, IndexError):
      continue
  found, frontier = [], [os.getpid()]
  while frontier:
    parent = frontier.pop()
    kids = [pid for pid, ppid in parents.items() if ppid == parent]
    found += kids
    frontier += kids
  return found


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except OSError:
    return False
  try:
    with open(f'/proc/{pid}/stat', encoding='utf-8') as f:  # a zombie has ended; its parent has not reaped it yet
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return True


def stop_job(result) -> None:
  """Cancels a submitted job that is still running, then ends the launcher's worker processes."""
  if result is not None:
    try:
      result.cancel()
      logging.warning('cancelled the job')
    except Exception as e:  # pylint: disable=broad-except  # finished already, or a runner that cannot cancel
      logging.debug('cancel: %s', e)
  pids = _children()
  for pid in pids:
    with contextlib.suppress(OSError):
      os.kill(pid, signal.SIGTERM)
  deadline = time.monotonic() + GRACE_SECONDS
  while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
    time.sleep(0.05)
  for pid in pids:
    if _alive(pid):
      with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def on_signals(output: str) -> Iterator[Watch]:
  """While inside: SIGTERM or SIGINT stop the job (stop_job) and raise Stopped in the main thread. Outside the
  main thread (where Python cannot handle signals) it does nothing."""
  watch = Watch()
  if threading.current_thread() is not threading.main_thread():
    yield watch
    return
  got: List[int] = []

  def handle(signum, _frame):
    if got:  # a second signal while stopping: the first one is being handled
      return
    got.append(signum)
    logging.warning('got %s: stopping the job', signal.Signals(signum).name)
    stop_job(watch.result)  # before raising: the local runner waits for its workers as the exception unwinds
    raise Stopped(signum, output)

  previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
  try:
    yield watch
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
