"""How the launcher shows the job's progress: one tqdm bar on a terminal, plain lines anywhere else.

A terminal gets a single bar redrawn in place (and the launcher's log lines
printed above it, not through it). A log that is a file or a pipe (Airflow's
task log, CI) would keep every redraw, so it gets a plain line every
--progress_seconds instead, starting with `progress:` like the workers' own
lines. The ETA comes from the rate over the last RATE_WINDOW seconds: the
rate since the start would count the start-up (4 to 13 s) against it.
"""
import collections
import contextlib
import os
import sys
import time
from typing import Deque, NamedTuple, Optional, Tuple

from transforms.progress import MARK

RATE_WINDOW = 30.0  # seconds of recent progress the rate and the ETA are measured on


class Snapshot(NamedTuple):
  done: int  # images done: rows plus error rows, and the records of units kept from earlier runs (--resume)
  errors: int
  skipped: int  # of done, kept from earlier runs
  total: Optional[float]  # records to do; None while unknown
  estimated: bool = False  # the total projects some shards' records from the bytes read so far (totals.py)


class Rate:
  """Images per second over the last `window` seconds of what this run did (kept records not counted)."""

  def __init__(self, window: float = RATE_WINDOW, clock=time.monotonic):
    self._window, self._clock = window, clock
    self._seen: Deque[Tuple[float, int]] = collections.deque()

  def add(self, done_here: int) -> Optional[float]:
    """The rate after this observation; measured from the first image on (start-up is not in it)."""
    if done_here == 0:
      return None
    now = self._clock()
    self._seen.append((now, done_here))
    while len(self._seen) > 2 and now - self._seen[1][0] >= self._window:
      self._seen.popleft()
    (first_time, first_done), (last_time, last_done) = self._seen[0], self._seen[-1]
    if last_time - first_time < 1.0:
      return None
    return (last_done - first_done) / (last_time - first_time)


def eta_seconds(done: int, total: Optional[float], rate: Optional[float]) -> Optional[float]:
  if total is None or not rate:
    return None
  return max(0.0, total - done) / rate


def clock_text(seconds: float) -> str:
  """H:MM:SS, or M:SS under an hour."""
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


def line(snapshot: Snapshot, rate: Optional[float], final: bool = False) -> str:
  """progress: 1,234/5,000 images (24.7%), 102.3 images/s, 3 errors, ETA 0:37 (`~5,000` when estimated)."""
  total = snapshot.total
  if total is None:
    text = f'{MARK} {snapshot.done:,} images'
  else:
    share = snapshot.done / total if total else 1.0
    text = f'{MARK} {snapshot.done:,}/{"~" if snapshot.estimated else ""}{round(total):,} images ({share:.1%})'
  if rate is not None and (rate or not final):  # a last line's rate of 0: all seen at once (Flink), no rate
    text += f', {rate:.1f} images/s'
  elif not final:  # no rate yet: under a second since the first image
    text += ', starting'
  text += f', {snapshot.errors:,} errors'
  if snapshot.skipped:
    text += f', {snapshot.skipped:,} kept from earlier runs'
  eta = eta_seconds(snapshot.done, total, rate)
  if eta is not None:
    text += f', ETA {clock_text(eta)}'
  return text


class Lines:
  """A plain line every `every` seconds, and a last one at the end."""

  def __init__(self, every: float, stream=None, clock=time.monotonic):
    self._every, self._stream, self._clock = every, stream or sys.stderr, clock
    self._rate = Rate(clock=clock)
    self._last: Optional[float] = None
    self._shown: Optional[Snapshot] = None
    self._text: Optional[str] = None

  def update(self, snapshot: Snapshot, final: bool = False) -> None:
    rate = self._rate.add(snapshot.done - snapshot.skipped)
    now = self._clock()
    if self._last is None:
      self._last = now  # the first line comes after `every` seconds, not at once
    # The last line comes even when the counts have not moved since the line before (on Flink they can reach
    # the total between two polls), unless it would repeat that line word for word.
    text = line(snapshot, rate, final)
    if (final and text != self._text) or (now - self._last >= self._every and snapshot != self._shown):
      self._last, self._shown, self._text = now, snapshot, text
      print(text, file=self._stream, flush=True)

  def close(self, snapshot: Optional[Snapshot]) -> None:
    if snapshot is not None:
      self.update(snapshot, final=True)


class Bar:
  """One tqdm bar on the terminal; log records go above it while it is shown."""

  def __init__(self, stream=None):
    import tqdm  # pylint: disable=import-outside-toplevel
    from tqdm.contrib import logging as tqdm_logging  # pylint: disable=import-outside-toplevel
    stream = stream or sys.stderr
    try:
      columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
      columns = 0
    width = {'dynamic_ncols': True} if columns else {'ncols': 100}  # a terminal that tells no size (a bare pty)
    self._bar = tqdm.tqdm(total=None, unit=' images', file=stream, desc='progress', smoothing=0.1, **width)
    self._skipped, self._started = 0, False
    self._logs = contextlib.ExitStack()
    self._logs.enter_context(tqdm_logging.logging_redirect_tqdm(tqdm_class=tqdm.tqdm))

  def update(self, snapshot: Snapshot) -> None:
    bar = self._bar
    total = None if snapshot.total is None else max(round(snapshot.total), snapshot.done)
    if total != bar.total:
      bar.total = total
    postfix = f'{snapshot.errors:,} errors' + (', total estimated' if snapshot.estimated else '')
    if snapshot.skipped:
      postfix += f', {snapshot.skipped:,} kept'
    bar.set_postfix_str(postfix, refresh=False)
    if snapshot.skipped > self._skipped:  # kept, not done now: not in the rate
      bar.n, self._skipped = bar.n + snapshot.skipped - self._skipped, snapshot.skipped
    if snapshot.done > bar.n:
      if not self._started:  # its clock, rate and ETA start at the first image, not with the start-up
        bar.unpause()
        self._started = True
      bar.update(snapshot.done - bar.n)
    else:
      bar.refresh()

  def close(self, snapshot: Optional[Snapshot]) -> None:
    if snapshot is not None:
      self.update(snapshot)
    self._bar.close()
    self._logs.close()


def for_stream(every: float, stream=None):
  """A Bar when the stream (stderr by default) is a terminal, else Lines every `every` seconds."""
  stream = stream or sys.stderr
  is_terminal = getattr(stream, 'isatty', lambda: False)()
  return Bar(stream) if is_terminal else Lines(every, stream)
