"""Reads that survive flaky storage: one retry loop, shared by every reader.

A read that fails part-way with a storage error (a dropped connection, a 503,
a timeout) is reopened and continued from the last good position: the reader
says, after each item, where the next read would start, and `resilient`
restarts it there after a backoff (1, 2, 4, ... seconds, capped). Errors
about the data itself (a bad CRC, not a tar, bad GZIP, a truncated file) are
not retried: they reach the reader, which turns them into error rows as
before. Permanent storage answers (a missing file, no permission) are data
errors too: retrying cannot change them.

When storage keeps failing, `resilient` gives up after ATTEMPTS consecutive
failures without progress (each attempt that yields an item starts the count
again) and yields an Unread naming exactly what was not read; the reader puts
it on the UNREAD_TAG output, the job tallies it as `unread/<location>` and the
summary says `accounted: false` and lists it.
"""
import http.client
import logging
import tarfile
import time
import zlib
from typing import Callable, Iterator, NamedTuple, Tuple, TypeVar, Union

UNREAD_TAG = 'unread'
ATTEMPTS = 5  # consecutive failed attempts at one position before its rest is reported unread
BACKOFF_SECONDS = 1.0  # before the first retry; doubled each time
MAX_BACKOFF_SECONDS = 30.0

T = TypeVar('T')
P = TypeVar('P')


class Unread(NamedTuple):
  location: str  # what could not be read, e.g. PATH#bytes=START-END
  error: BaseException


def _optional_types(module: str, *names: str) -> Tuple[type, ...]:
  try:
    mod = __import__(module, fromlist=list(names))
  except ImportError:
    return ()
  return tuple(getattr(mod, name) for name in names if hasattr(mod, name))


# Data errors: retrying reads the same bytes again. (gzip.BadGzipFile is an OSError: it is listed here first.)
_DATA_ERRORS = (tarfile.TarError, EOFError, zlib.error, ValueError,
                FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) + _optional_types(
                    'gzip', 'BadGzipFile') + _optional_types(
                        'google.api_core.exceptions', 'NotFound', 'Forbidden', 'Unauthorized', 'BadRequest')
# Storage errors: the same read may well work again.
_STORAGE_ERRORS = (OSError, ConnectionError, TimeoutError, http.client.HTTPException) + _optional_types(
    'google.api_core.exceptions', 'GoogleAPIError') + _optional_types(
        'google.auth.exceptions', 'TransportError') + _optional_types(
            'requests.exceptions', 'RequestException') + _optional_types(
                'urllib3.exceptions', 'HTTPError')


def is_storage_error(exc: BaseException) -> bool:
  """Whether exc is a storage failure worth retrying, rather than something wrong with the data."""
  if isinstance(exc, _DATA_ERRORS):
    return False
  if isinstance(exc, _STORAGE_ERRORS):
    return True
  cause = exc.__cause__ or exc.__context__  # e.g. Beam wrapping a transport error
  return cause is not None and cause is not exc and is_storage_error(cause)


def backoff(attempt: int) -> float:
  """Seconds to wait before retry number `attempt` (1-based)."""
  return min(BACKOFF_SECONDS * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


def resilient(read: Callable[[P], Iterator[Tuple[T, P]]], start: P, unread: Callable[[P], str],
              attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> Iterator[Union[T, Unread]]:
  """The items of read(start), continuing at the last good position after storage errors.

  read(position) yields (item, position after item) pairs from position on;
  each item is yielded once, in order, however often the read is restarted.
  Data errors propagate. After `attempts` storage failures in a row at one
  position, yields Unread(unread(position), error) and stops.
  """
  position = start
  failures = 0
  while True:
    try:
      for item, after in read(position):
        position = after
        failures = 0
        yield item
      return
    except Exception as e:  # pylint: disable=broad-except
      if not is_storage_error(e):
        raise
      failures += 1
      if failures >= attempts:
        logging.warning('giving up on %s after %d attempts: %s', unread(position), failures, e)
        yield Unread(unread(position), e)
        return
      wait = backoff(failures)
      logging.warning('storage error reading %s (attempt %d of %d), retrying in %.0f s: %s', unread(position),
                      failures, attempts, wait, e)
      sleep(wait)
