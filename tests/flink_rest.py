"""A stand-in for Flink's REST API serving the JSON a real one does, for tests of the launcher's side of it
(tests/flink.py runs the real cluster): the jobs' accumulators carry Beam's metrics as Flink's runner puts them."""
import base64
import contextlib
import http.server
import json
import threading
from typing import Iterator

from apache_beam.coders.coder_impl import create_OutputStream


def payload(value: int) -> str:
  """A sum_int64 counter's value as Beam encodes it (a varint), base64 as Flink serves it."""
  stream = create_OutputStream()
  stream.write_var_int64(value)
  return base64.b64encode(stream.get()).decode()


def accumulators(metrics: list) -> dict:
  """/jobs/JID/accumulators carrying these Beam metrics, beside an accumulator of Flink's own."""
  return {'user-task-accumulators': [
      {'name': '__metricscontainers', 'value': json.dumps({'metrics': {'attempted': metrics}})},
      {'name': 'other', 'value': '1'}]}


@contextlib.contextmanager
def serve(answers: dict) -> Iterator[str]:
  """Serves answers[path] as JSON (the test may change them while it serves); yields the 'host:port' master."""

  class Handler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # pylint: disable=invalid-name
      body = json.dumps(answers[self.path]).encode()
      self.send_response(200)
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(('localhost', 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    yield f'localhost:{server.server_port}'
  finally:
    server.shutdown()
