"""Reads in flight while the model runs: a bounded window of reads per reading thread, taken in order.

On object storage a read waits tens of ms for its first byte (GCS: p50 about
60 ms for a small object); the cores consume an image in a few ms. Read one
after another, the cores idle. By Little's law the reads to keep in flight are
about latency x the rate the cores consume: 60 ms x 450 images/s per core is
27, so the default (settings.READS_IN_FLIGHT) covers 100 ms at that rate.

The window runs reads on a pool of threads (they wait on sockets, not the
GIL), bounded by count (`reads`) and by bytes (`max_bytes`, the sizes the
reads announce) so that memory stays bounded with large files. It starts
reads strictly in the order they were added, and the reader takes each result
in that same order: the unit's order, and the units' order, are kept. The
head of the line always starts, whatever its size, so a file larger than the
byte bound is still read (alone). Every read runs inside retry.resilient where
the reader puts it, so a read that fails is retried or reported unread exactly
as without the window; its result or exception waits for the reader.

Only the reading thread calls the window's methods; the pool threads only run
the reads.
"""
import collections
import concurrent.futures
from typing import Any, Callable, Deque, Optional


class Fetch:
  """One read: fn() run on a pool thread, `size` the bytes it announces (for the byte bound)."""
  __slots__ = ('fn', 'size', 'future', 'dropped')

  def __init__(self, fn: Callable[[], Any], size: int):
    self.fn, self.size = fn, max(0, size)
    self.future: Optional[concurrent.futures.Future] = None
    self.dropped = False


class Window:
  """`reads` reads in flight at most (1: each read runs when it is taken, in the reading thread)."""

  def __init__(self, reads: int, max_bytes: int):
    self.reads, self.max_bytes = reads, max_bytes
    self._pool = concurrent.futures.ThreadPoolExecutor(reads, 'read') if reads > 1 else None
    self._waiting: Deque[Fetch] = collections.deque()  # added, not started
    self._started = 0  # started and not yet taken or dropped
    self._bytes = 0  # their sizes

  def add(self, fetch: Fetch) -> Fetch:
    self._waiting.append(fetch)
    self._start()
    return fetch

  def full(self) -> bool:
    """Whether a read waits for room: the reads ahead are enough, the reader should take some."""
    return bool(self._waiting)

  def in_flight(self) -> int:
    return self._started

  def take(self, fetch: Fetch) -> Any:
    """The read's result (raises its exception); waits for it, starting it first if it had not started."""
    if fetch.future is None:
      if self._pool is None or self._started == 0:  # the head of the line, inline: nothing to overlap with
        self._remove(fetch)
        return fetch.fn()
      self._start_now(fetch)
    try:
      return fetch.future.result()
    finally:
      self._release(fetch)

  def drop(self, fetch: Fetch) -> None:
    """A read the reader will not take: never started, or its result discarded once it is done."""
    if fetch.dropped:
      return
    if fetch.future is None:
      fetch.dropped = True
      self._remove(fetch)
      return
    concurrent.futures.wait([fetch.future])
    self._release(fetch)

  def close(self, wait: bool = True) -> None:
    """Ends the pool; wait=False abandons what is in flight (a failed bundle's reads)."""
    for fetch in list(self._waiting):
      fetch.dropped = True
    self._waiting.clear()
    if self._pool is not None:
      self._pool.shutdown(wait=wait, cancel_futures=not wait)

  def _start(self) -> None:
    while self._waiting and self._pool is not None:
      fetch = self._waiting[0]
      if self._started and (self._started >= self.reads or self._bytes + fetch.size > self.max_bytes):
        return
      self._waiting.popleft()
      self._submit(fetch)

  def _start_now(self, fetch: Fetch) -> None:
    self._remove(fetch)
    self._submit(fetch)

  def _submit(self, fetch: Fetch) -> None:
    self._started += 1
    self._bytes += fetch.size
    fetch.future = self._pool.submit(fetch.fn)

  def _remove(self, fetch: Fetch) -> None:
    try:
      self._waiting.remove(fetch)
    except ValueError:
      pass

  def _release(self, fetch: Fetch) -> None:
    if fetch.dropped:
      return
    fetch.dropped = True  # taken: counted once
    self._started -= 1
    self._bytes -= fetch.size
    self._start()
