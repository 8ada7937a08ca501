"""Calls bounded in time: a decode or a model call that hangs must not stall the job.

Python cannot stop a thread, so the bounded call runs on a helper thread and
the caller stops waiting for it. The helper thread is reused from call to call
(handing a call over costs two queue operations, tens of microseconds, not a
thread per call) and is a daemon: a call that overruns is abandoned with its
thread, which ends if the call ever returns and never keeps a worker process
from exiting. (Beam's own `with_exception_handling(timeout=...)` waits on a
ThreadPoolExecutor, whose threads Python joins at exit: on the local runner a
model call that never returns would keep its worker process, and so the
launcher, from ever exiting.) The next call starts a new thread.
"""
import queue
import threading
from typing import Optional


class TimedOut(TimeoutError):
  """The call did not return within the bound."""


def _serve(todo: queue.SimpleQueue, done: queue.SimpleQueue) -> None:
  while (call := todo.get()) is not None:
    fn, args = call
    try:
      done.put((True, fn(*args)))
    except BaseException as e:  # pylint: disable=broad-except  # re-raised in the caller
      done.put((False, e))


class Watchdog:
  """Runs calls on one daemon thread and waits at most the given seconds for each; not for concurrent use (one
  per DoFn instance, which Beam gives one bundle at a time, or per calling thread)."""

  def __init__(self, name: str):
    self._name = name
    self._todo: Optional[queue.SimpleQueue] = None
    self._done: Optional[queue.SimpleQueue] = None

  def call(self, seconds: float, fn, *args):
    """fn(*args), or TimedOut after `seconds`; fn's own exception is raised here."""
    if self._todo is None:
      self._todo, self._done = queue.SimpleQueue(), queue.SimpleQueue()
      threading.Thread(target=_serve, args=(self._todo, self._done), name=self._name, daemon=True).start()
    self._todo.put((fn, args))
    try:
      ok, value = self._done.get(timeout=seconds)
    except queue.Empty:
      self.close()
      raise TimedOut(f'not done in {seconds:g} s') from None
    if not ok:
      raise value
    return value

  def close(self) -> None:
    if self._todo is not None:
      self._todo.put(None)  # the thread ends after its current call
      self._todo = self._done = None
