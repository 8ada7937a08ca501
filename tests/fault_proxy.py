"""A fault-injecting HTTP proxy in front of the GCS emulator, for tests of reads that survive flaky storage.

Point STORAGE_EMULATOR_HOST at `proxy.url`: every request goes to the
emulator (one request per connection, answered with `Connection: close`), and
object downloads (`alt=media`) are faulted as the Faults say: a fraction of
them, chosen by a seeded random generator, cut the connection mid-body,
answer 503 or are delayed; and every download of `fail_object` whose Range
starts at or after `fail_from_byte` is cut, always (storage that keeps
failing past some byte). Metadata, listing and upload requests pass (the
emulator's address in `mediaLink`s rewritten to the proxy's, so that
downloads come through it too).
"""
import asyncio
import dataclasses
import random
import re
import threading
import urllib.parse
from typing import Optional, Tuple

CUT, UNAVAILABLE, DELAY = 'cut', '503', 'delay'


@dataclasses.dataclass
class Faults:
  fraction: float = 0.0  # of downloads faulted
  modes: Tuple[str, ...] = (CUT, UNAVAILABLE, DELAY)
  delay_seconds: float = 0.5
  seed: int = 0
  fail_object: Optional[str] = None  # object name whose downloads past fail_from_byte always fail
  fail_from_byte: int = 0


@dataclasses.dataclass
class Stats:
  requests: int = 0
  downloads: int = 0
  faulted: int = 0
  request_lines: list = dataclasses.field(default_factory=list)  # method and target of each request


async def _read_request(reader: asyncio.StreamReader) -> Tuple[bytes, bytes]:
  head = await reader.readuntil(b'\r\n\r\n')
  length = re.search(rb'(?im)^content-length:\s*(\d+)\s*$', head)
  body = await reader.readexactly(int(length.group(1))) if length else b''
  return head, body


def _with_close(head: bytes) -> bytes:
  lines = [l for l in head[:-4].split(b'\r\n') if not l.lower().startswith((b'connection:', b'keep-alive:'))]
  return b'\r\n'.join(lines + [b'Connection: close']) + b'\r\n\r\n'


class FaultProxy:
  """Runs in a thread of its own; use as a context manager."""

  def __init__(self, upstream: str, faults: Faults = Faults()):
    parsed = urllib.parse.urlparse(upstream)
    self._upstream = (parsed.hostname, parsed.port)
    self.faults = faults
    self.stats = Stats()
    self._random = random.Random(faults.seed)
    self._loop = asyncio.new_event_loop()
    self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
    self._server = None
    self.url = None

  def __enter__(self):
    self._thread.start()
    self._server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(self._handle, 'localhost', 0), self._loop).result(30)
    self.url = f'http://localhost:{self._server.sockets[0].getsockname()[1]}'
    return self

  def __exit__(self, *exc):
    async def stop():
      self._server.close()
      await self._server.wait_closed()
    asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join(30)

  def _fault(self, head: bytes) -> Optional[str]:
    request_line = head.split(b'\r\n', 1)[0].decode('latin-1')
    method, target = request_line.split(' ')[:2]
    self.stats.request_lines.append(f'{method} {target}')
    if method != 'GET' or 'alt=media' not in target:
      return None
    self.stats.downloads += 1
    f = self.faults
    if f.fail_object is not None and f'/o/{f.fail_object}?' in urllib.parse.unquote(target):
      found = re.search(rb'(?im)^range:\s*bytes=(\d+)-', head)
      if (int(found.group(1)) if found else 0) >= f.fail_from_byte:
        return CUT
    if f.fraction and self._random.random() < f.fraction:
      return self._random.choice(f.modes)
    return None

  async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
      head, body = await _read_request(reader)
      self.stats.requests += 1
      fault = self._fault(head)
      if fault == UNAVAILABLE:
        self.stats.faulted += 1
        writer.write(b'HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 2\r\n'
                     b'Connection: close\r\n\r\n{}')
        await writer.drain()
        return
      if fault == DELAY:
        self.stats.faulted += 1
        await asyncio.sleep(self.faults.delay_seconds)
      up_reader, up_writer = await asyncio.open_connection(*self._upstream)
      up_writer.write(_with_close(head) + body)
      await up_writer.drain()
      response = await up_reader.read(-1)
      up_writer.close()
      split = response.find(b'\r\n\r\n') + 4
      response_head, response_body = response[:split], response[split:]
      if fault is None and b'mediaLink' in response_body:  # metadata: downloads must come through here too
        upstream = f'{self._upstream[0]}:{self._upstream[1]}'.encode()
        response_body = response_body.replace(upstream, self.url[len('http://'):].encode())
        response_head = re.sub(rb'(?im)^content-length:\s*\d+', b'Content-Length: %d' % len(response_body),
                               response_head)
      if fault == CUT and len(response_body) > 1:
        self.stats.faulted += 1
        writer.write(_with_close(response_head) + response_body[:len(response_body) // 2])
        await writer.drain()
        writer.transport.abort()  # a reset mid-body
        return
      writer.write(_with_close(response_head) + response_body)
      await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
      pass
    finally:
      if not writer.transport.is_closing():
        writer.close()
