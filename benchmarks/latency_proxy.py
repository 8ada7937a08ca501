"""A TCP proxy that holds each HTTP request L ms before passing it on, and counts connections and requests.

Object storage answers a small read in tens of ms (GCS: p50 about 60 ms for
1-2 KB objects); a local emulator answers in well under one. Put this proxy in
front of the emulator (STORAGE_EMULATOR_HOST=proxy.url) and every request,
on a new connection or a kept-alive one, waits L ms before the emulator sees
it, as if it crossed a network; bandwidth stays local. It works at the TCP
level: on a connection, the first bytes a client sends after it last received
an answer begin a new request (HTTP/1.1 without pipelining, which is what
HTTP clients send), so keep-alive, chunked bodies and large ranged answers
pass untouched. The counts are what a client really costs: connections opened,
requests made.

`python -m benchmarks.latency_proxy --upstream http://localhost:PORT --latency_ms 25` runs one alone.
"""
import argparse
import asyncio
import re
import threading
import time
import urllib.parse
from typing import Optional

_REQUEST_LINE = re.compile(rb'^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) ')


class LatencyProxy:
  """Runs on a thread of its own; use as a context manager. `connections` and `requests` count what passed."""

  def __init__(self, upstream: str, latency_ms: float, port: int = 0):
    parsed = urllib.parse.urlparse(upstream)
    self._upstream = (parsed.hostname, parsed.port)
    self.latency = latency_ms / 1000.0
    self._port = port
    self.connections = 0
    self.requests = 0
    self.request_lines = []  # each request's first line, when record_lines is set
    self.record_lines = False
    self._loop = asyncio.new_event_loop()
    self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
    self._server: Optional[asyncio.base_events.Server] = None
    self.url = ''

  def __enter__(self) -> 'LatencyProxy':
    self._thread.start()
    self._server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(self._handle, 'localhost', self._port, limit=1 << 20), self._loop).result(30)
    self.url = f'http://localhost:{self._server.sockets[0].getsockname()[1]}'
    return self

  def __exit__(self, *exc) -> None:
    async def stop():
      self._server.close()
      tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
      for task in tasks:
        task.cancel()
      await asyncio.gather(*tasks, return_exceptions=True)
    asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join(30)

  def counts(self) -> dict:
    return {'connections': self.connections, 'requests': self.requests}

  async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
    self.connections += 1
    try:
      up_reader, up_writer = await asyncio.open_connection(*self._upstream, limit=1 << 20)
    except OSError:
      client_writer.close()
      return
    answered = [True]  # the next bytes from the client begin a new request

    async def requests_up():
      while True:
        data = await client_reader.read(1 << 16)
        if not data:
          break
        if answered[0]:
          answered[0] = False
          if _REQUEST_LINE.match(data):
            self.requests += 1
            if self.record_lines:
              self.request_lines.append(data.split(b'\r\n', 1)[0].decode('latin-1'))
          if self.latency:
            await asyncio.sleep(self.latency)
        up_writer.write(data)
        await up_writer.drain()
      up_writer.close()

    async def answers_down():
      while True:
        data = await up_reader.read(1 << 16)
        if not data:
          break
        answered[0] = True
        client_writer.write(data)
        await client_writer.drain()
      client_writer.close()

    tasks = [asyncio.ensure_future(requests_up()), asyncio.ensure_future(answers_down())]
    try:
      await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
      for task in tasks:
        task.cancel()
      await asyncio.gather(*tasks, return_exceptions=True)
      for writer in (up_writer, client_writer):
        writer.close()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--upstream', required=True)
  parser.add_argument('--latency_ms', type=float, default=25.0)
  parser.add_argument('--port', type=int, default=0)
  args = parser.parse_args()
  with LatencyProxy(args.upstream, args.latency_ms, args.port) as proxy:
    print(proxy.url, flush=True)
    try:
      while True:
        time.sleep(10)
        print(proxy.counts(), flush=True)
    except KeyboardInterrupt:
      pass


if __name__ == '__main__':
  main()
