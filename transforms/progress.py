"""Progress of long runs: images done by this worker process and its rate, every few seconds.

Process-wide because a worker runs many DoFn instances on its threads.
Messages start with MARK so that the entry point can let them through while
it quiets the rest of the runner's worker logs.
"""
import logging
import os
import threading
import time

MARK = 'progress:'

_lock = threading.Lock()
_state = {'count': 0, 'start': None, 'last': 0.0}


def add(n: int, interval_seconds: float) -> None:
  with _lock:
    now = time.monotonic()
    if _state['start'] is None:
      _state['start'] = _state['last'] = now
    _state['count'] += n
    if now - _state['last'] < interval_seconds:
      return
    _state['last'] = now
    rate = _state['count'] / max(now - _state['start'], 1e-9)
    logging.info('%s worker %d has done %d images, %.1f images/s', MARK, os.getpid(), _state['count'], rate)
