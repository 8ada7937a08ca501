"""TFRecord framing without TensorFlow: write records, and read them from any byte range of a file.

A record is `length (uint64 LE) | masked CRC32C of length | data | masked CRC32C of data`.
Beam's own TFRecord source reads a file from its start only, so one large file
would be read by one worker. Here a file is cut into byte ranges that workers
read independently, with this ownership rule:

  A range [start, end) owns the records that begin inside it, and the bad
  bytes that begin inside it (up to the next record start).

A range that does not begin at 0 finds its first record start by scanning
forward for an offset that looks like one (`_is_record_start`): its length CRC
matches, the record fits in the file, and either its data CRC matches or the
next record's length CRC does. Two independent 32-bit checks make a false
match inside image bytes about a 2^-63 event per offset, and a candidate must
first have a length below 4 GiB (four zero high bytes), which numpy finds
quickly. The same scan resynchronizes after corruption, so a damaged record in
the middle of a shard costs only that record: the reader yields a BadRange for
it and goes on. Because the range where damage begins reports it up to the
next record start, and later ranges start exactly there, every byte of a file
is either in one yielded record or in one reported bad range, however the file
is cut. (A TFRecord file stored as bytes inside a record could fool the scan;
nothing else realistic can.)

Compressed (GZIP) files are read as one stream from the start; their offsets
count uncompressed bytes.

Size bound. Given `max_record_bytes`, a record whose length header (checked
by its CRC) declares more is never read into memory: the reader yields a
TooLarge for it and skips its bytes (a seek in a plain file, reading and
discarding them in 1 MiB chunks in a stream), so the memory a reader holds is
about max_record_bytes plus 2 MiB whatever the file holds.
"""
import struct
from typing import BinaryIO, Iterator, List, NamedTuple, Optional, Tuple, Union

import google_crc32c
import numpy as np

HEADER_BYTES = 12  # length + its CRC
FOOTER_BYTES = 4  # data CRC
OVERHEAD = HEADER_BYTES + FOOTER_BYTES
MIN_SPLIT_BYTES = 1 << 20
MAX_SPLIT_BYTES = 64 << 20
SPLITS_PER_FILE = 16
_CHUNK = 1 << 20
_MASK_DELTA = 0xa282ead8


def masked_crc32c(data: bytes) -> int:
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xffffffff


def encode_record(data: bytes) -> bytes:
  length = struct.pack('<Q', len(data))
  crcs = struct.pack('<I', masked_crc32c(length)), struct.pack('<I', masked_crc32c(data))
  return b''.join((length, crcs[0], data, crcs[1]))


def split_ranges(size: int, min_bytes: int = MIN_SPLIT_BYTES, max_bytes: int = MAX_SPLIT_BYTES,
                 splits: int = SPLITS_PER_FILE) -> List[Tuple[int, int]]:
  """Byte ranges covering [0, size): about `splits` of them, each between min_bytes and max_bytes."""
  step = min(max(size // splits, min_bytes), max_bytes)
  return [(start, min(start + step, size)) for start in range(0, max(size, 1), step)]


class Record(NamedTuple):
  offset: int  # of the record's header in the (uncompressed) file
  data: bytes


class BadRange(NamedTuple):
  start: int
  end: int  # exclusive; the next record start or the end of the file
  reason: str


class TooLarge(NamedTuple):
  """A record longer than the reader's bound, skipped unread (its data CRC unchecked)."""
  start: int
  end: int  # exclusive: the next record's offset
  length: int  # the data's length, as its header declares


class _Window:
  """The bytes of a file from a moving position onwards: reads ahead in chunks, forgets what lies behind."""

  def __init__(self, f: BinaryIO, start: int):
    if start:
      f.seek(start)
    self._f = f
    self._pos = start  # file offset of _buf[0]
    self._buf = bytearray()
    self._eof = False

  def get(self, offset: int, n: int) -> bytes:
    """Up to n bytes at offset (fewer only at the end of the file)."""
    assert offset >= self._pos, (offset, self._pos)
    missing = offset + n - self._pos - len(self._buf)
    while missing > 0 and not self._eof:
      data = self._f.read(max(missing, _CHUNK))
      self._eof = not data
      self._buf += data
      missing -= len(data)
    start = offset - self._pos
    return bytes(self._buf[start:start + n])

  def end(self) -> int:
    """The file's length, reading (and forgetting) whatever is left."""
    while not self._eof:
      data = self._f.read(_CHUNK)
      self._eof = not data
      self._pos += len(self._buf)
      self._buf = bytearray(data)
    return self._pos + len(self._buf)

  def skip_to(self, offset: int, seekable: bool) -> int:
    """Moves to offset without holding what lies before it; returns the offset reached (less at the end)."""
    end = self._pos + len(self._buf)
    if offset <= end:
      del self._buf[:offset - self._pos]
      self._pos = offset
      return offset
    self._buf = bytearray()
    self._pos = end
    if seekable:
      self._f.seek(offset)
      self._pos = offset
      return offset
    while self._pos < offset and not self._eof:
      data = self._f.read(min(_CHUNK, offset - self._pos))
      self._eof = not data
      self._pos += len(data)
    return self._pos

  def peek(self, offset: int, n: int) -> bytes:
    """n bytes at a far offset of a seekable file, without reading what lies between."""
    if offset + n <= self._pos + len(self._buf):
      return self.get(offset, n)
    here = self._f.tell()
    try:
      self._f.seek(offset)
      parts = []
      while n > 0:  # a read may return less than asked (a network file at its chunk's end)
        data = self._f.read(n)
        if not data:
          break
        parts.append(data)
        n -= len(data)
      return b''.join(parts)
    finally:
      self._f.seek(here)

  def forget_before(self, offset: int) -> None:
    drop = offset - self._pos
    if drop >= _CHUNK:  # amortized: trimming a bytearray's front moves what remains
      del self._buf[:drop]
      self._pos = offset


class RecordReader:
  """Reads records and bad ranges from a binary file; `size` is None for streams (e.g. decompressed GZIP).

  Records longer than max_record_bytes (None: no bound) are yielded as TooLarge, unread.
  """

  def __init__(self, f: BinaryIO, size: Optional[int] = None, max_record_bytes: Optional[int] = None):
    self._f = f
    self._size = size
    self._max = max_record_bytes
    self._window: Optional[_Window] = None

  def read(self, start: int = 0, end: Optional[int] = None,
           aligned: bool = False) -> Iterator[Union[Record, BadRange, TooLarge]]:
    """The records and bad ranges that begin in [start, end), in file order.

    aligned: start is known to be where a record (or damage) begins, e.g. where an earlier read of the same
    range stopped; the reader starts there instead of looking for the first record start.
    """
    self._window = _Window(self._f, start)
    offset = start if start == 0 or aligned else self._find_record_start(start, end)
    while offset is not None and (end is None or offset < end):
      self._window.forget_before(offset)
      item, offset = self._read_at(offset)
      if item is not None:
        yield item
    if offset is not None and not self._is_record_start(offset) and not self._at_eof(offset):
      # Damage right where the next range begins: that range cannot see it, so this one reports it.
      yield BadRange(offset, self._resync(offset), 'corrupt record header (length CRC mismatch)')

  def _read_at(self, offset: int) -> Tuple[Optional[Union[Record, BadRange, TooLarge]], Optional[int]]:
    """(what starts at offset, the next offset to read or None at the end)."""
    header = self._window.get(offset, HEADER_BYTES)
    if not header:
      return None, None
    if len(header) < HEADER_BYTES:
      return BadRange(offset, offset + len(header), 'truncated record header at the end of the file'), None
    length = self._length(header)
    if length is None:
      nxt = self._resync(offset)
      return BadRange(offset, nxt, 'corrupt record header (length CRC mismatch)'), self._next_or_none(nxt)
    record_end = offset + length + OVERHEAD
    if self._size is not None and record_end > self._size:
      return BadRange(offset, self._size, f'truncated record: {length} bytes declared, file ends first'), None
    if self._max is not None and length > self._max:
      reached = self._window.skip_to(record_end, self._size is not None)
      if reached < record_end:
        return BadRange(offset, reached, f'truncated record: {length} bytes declared, file ends first'), None
      return TooLarge(offset, record_end, length), self._next_or_none(record_end)
    body = self._window.get(offset + HEADER_BYTES, length + FOOTER_BYTES)
    if len(body) < length + FOOTER_BYTES:
      return BadRange(offset, offset + HEADER_BYTES + len(body),
                      f'truncated record: {length} bytes declared, file ends first'), None
    data = body[:length]
    if struct.unpack('<I', body[length:])[0] != masked_crc32c(data):
      return BadRange(offset, record_end, 'corrupt record data (data CRC mismatch)'), record_end
    return Record(offset, data), record_end

  def _next_or_none(self, offset: int) -> Optional[int]:
    return None if self._at_eof(offset) else offset

  def _at_eof(self, offset: int) -> bool:
    if self._size is not None:
      return offset >= self._size
    return not self._window.get(offset, 1)

  @staticmethod
  def _length(header: bytes) -> Optional[int]:
    length, crc = struct.unpack('<QI', header)
    return length if crc == masked_crc32c(header[:8]) else None

  def _is_record_start(self, offset: int) -> bool:
    length = self._length_at(offset)
    if length is None:
      return False
    if self._max is not None and length > self._max:  # too large to check its data: check the next header
      if self._size is None:
        return False  # a stream cannot look that far ahead; the bytes stay in the bad range
      nxt = offset + length + OVERHEAD
      return nxt >= self._size or self._length(self._window.peek(nxt, HEADER_BYTES).ljust(HEADER_BYTES, b'\0')) \
          is not None
    data_and_crc = self._window.get(offset + HEADER_BYTES, length + FOOTER_BYTES)
    if len(data_and_crc) < length + FOOTER_BYTES:
      return False
    if struct.unpack('<I', data_and_crc[length:])[0] == masked_crc32c(data_and_crc[:length]):
      return True
    nxt = offset + length + OVERHEAD
    return self._at_eof(nxt) or self._length_at(nxt) is not None

  def _length_at(self, offset: int) -> Optional[int]:
    header = self._window.get(offset, HEADER_BYTES)
    if len(header) < HEADER_BYTES:
      return None
    length = self._length(header)
    if length is None or (self._size is not None and offset + length + OVERHEAD > self._size):
      return None
    return length

  def _resync(self, bad_offset: int) -> int:
    """The next record start after damage at bad_offset, or the end of the file."""
    nxt = self._find_record_start(bad_offset + 1, None)
    if nxt is not None:
      return nxt
    return self._size if self._size is not None else self._window.end()

  def _find_record_start(self, start: int, limit: Optional[int]) -> Optional[int]:
    """The first offset in [start, limit) where a record starts, or None."""
    pos = start
    while limit is None or pos < limit:
      chunk = self._window.get(pos, _CHUNK + HEADER_BYTES)
      if len(chunk) < HEADER_BYTES:
        return None
      zero = np.frombuffer(chunk, np.uint8) == 0
      n = len(chunk) - HEADER_BYTES + 1  # candidate offsets pos .. pos + n - 1 have a whole header here
      high_bytes_zero = zero[4:4 + n] & zero[5:5 + n] & zero[6:6 + n] & zero[7:7 + n]
      for i in np.flatnonzero(high_bytes_zero):
        candidate = pos + int(i)
        if limit is not None and candidate >= limit:
          return None
        if self._is_record_start(candidate):
          return candidate
      pos += n
      self._window.forget_before(pos)
    return None
