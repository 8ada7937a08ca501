"""A TFRecord range or tar shard on object storage, read ahead in large range requests through the read window.

The reader parses a file front to back (tarfile's stream mode, the TFRecord
RecordReader). On gs:// each read call would be a round trip, so the bytes the
unit will need, [start, end + slack), are cut into chunks of CHUNK_BYTES, each
one ranged GET, added to the window when the unit is queued: they are in
flight while earlier units are still being decoded and inferred. Bytes outside
those chunks (a record that runs past the slack, a far look-ahead, a seek
back) are read directly, in ranged GETs of CHUNK_BYTES (RangedFile).

A chunk that failed raises its error where the parser reads it; the reader's
retry.resilient then reopens at its last good position, with a RangedFile
(no read-ahead: the retry needs nothing else in flight), so that failures
are counted and reported as without the window.
"""
import collections
import functools
import io
from typing import Deque, Optional, Tuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms.read import storage as storage_lib
from transforms.read.window import Fetch, Window

CHUNK_BYTES = 2 << 20  # one ranged GET; 25 to 100 ms of latency hide behind a few of them in flight
SLACK_BYTES = 1 << 20  # read ahead past a TFRecord range's end: its last record ends there


class RangedFile(io.RawIOBase):
  """A file read on demand in ranged GETs of CHUNK_BYTES (seek, tell, read)."""

  def __init__(self, store: 'storage_lib.Storage', path: str, start: int = 0):
    super().__init__()
    self._store, self._path = store, path
    self._pos = start
    self._data, self._data_at = b'', start

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def tell(self) -> int:
    return self._pos

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    if whence == io.SEEK_CUR:
      offset += self._pos
    elif whence == io.SEEK_END:
      raise io.UnsupportedOperation('seek from the end')
    self._pos = offset
    return offset

  def read(self, n: int = -1) -> bytes:
    """Up to n bytes: what is held at the position, else one more chunk; short at a chunk's end, as a raw file's
    read may be (asking for more than is held must not cost a request the caller did not need). n < 0: to the
    end."""
    if n is not None and n >= 0:
      piece = self._piece(n) if n else b''
      self._pos += len(piece)
      return piece
    parts = []
    while True:
      piece = self._piece(CHUNK_BYTES)
      if not piece:
        return b''.join(parts)
      parts.append(piece)
      self._pos += len(piece)

  def readinto(self, b) -> int:
    data = self.read(len(b))
    b[:len(data)] = data
    return len(data)

  def _piece(self, n: int) -> bytes:
    """Up to n bytes at the position, from what is held or one more request; b'' at the end."""
    at = self._pos - self._data_at
    if 0 <= at < len(self._data):
      return self._data[at:at + n]
    return self._fill(n)

  def _fill(self, n: int) -> bytes:
    self._data = self._store.read_range(self._path, self._pos, self._pos + max(n, CHUNK_BYTES))
    self._data_at = self._pos
    return self._data[:n]


class PrefetchedFile(RangedFile):
  """[start, end) of a file fetched ahead in chunks through `window`; the rest read as a RangedFile does."""

  def __init__(self, store: 'storage_lib.Storage', window: Window, path: str, start: int, end: int):
    super().__init__(store, path, start)
    self._window = window
    self._chunks: Deque[Tuple[int, Fetch]] = collections.deque()
    for at in range(start, end, CHUNK_BYTES):
      stop = min(at + CHUNK_BYTES, end)
      self._chunks.append((at, window.add(Fetch(functools.partial(store.read_range, path, at, stop), stop - at))))

  def _fill(self, n: int) -> bytes:
    while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= self._pos:
      self._window.drop(self._chunks.popleft()[1])  # skipped over (a seek forward)
    if self._chunks and self._chunks[0][0] <= self._pos:
      at, fetch = self._chunks.popleft()
      self._data, self._data_at = self._window.take(fetch), at
      return self._piece(n) if self._pos - at < len(self._data) else b''
    return super()._fill(n)

  def close(self) -> None:
    while self._chunks:
      self._window.drop(self._chunks.popleft()[1])
    super().close()


def prefetched(store: 'storage_lib.Storage', window: Optional[Window], path: str, start: int,
               end: Optional[int]) -> Optional[PrefetchedFile]:
  """[start, end) read ahead, for gs:// paths of known extent with a window; None otherwise (read directly)."""
  if window is None or window.reads <= 1 or end is None or not storage_lib.is_gcs(path):
    return None
  return PrefetchedFile(store, window, path, start, end)


def open_direct(store: 'storage_lib.Storage', path: str, start: int = 0):
  """The file from start, read on demand: ranged GETs on gs:// (the process's client), FileSystems elsewhere."""
  if storage_lib.is_gcs(path):
    return RangedFile(store, path, start)
  f = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
  if start:
    f.seek(start)
  return f
