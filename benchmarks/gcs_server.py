"""fake-gcs-server, a GCS emulator, started on this machine for the object storage benchmark and the tests.

Unlike gcp-storage-emulator it serves requests concurrently and enforces
preconditions as GCS does (if_generation_match=0 on an existing object: 412),
which the output's lease relies on (transforms/output/lease.py).
"""
import contextlib
import os
import pathlib
import socket
import subprocess
import time
import urllib.request
from typing import Iterator, Optional

FAKE_GCS_SERVER = 'github.com/fsouza/fake-gcs-server@v1.56.1'


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def wait_for_port(proc: subprocess.Popen, port: int, name: str, seconds: float = 60) -> None:
  """Until the server started as proc listens on port; raises with its stderr if it exits first."""
  deadline = time.monotonic() + seconds
  while True:
    if proc.poll() is not None:
      raise RuntimeError(f'{name} exited: {proc.stderr.read().decode()[-2000:]}')
    with contextlib.suppress(OSError), socket.create_connection(('localhost', port), timeout=1):
      return
    if time.monotonic() > deadline:
      raise RuntimeError(f'{name} did not start within {seconds:g} s')
    time.sleep(0.2)


def fake_gcs_server_binary() -> str:
  """fake-gcs-server, installed into ~/go/bin with `go install` (about 2.5 minutes) if it is not there."""
  gobin = pathlib.Path(os.environ.get('GOBIN') or pathlib.Path.home() / 'go' / 'bin')
  binary = gobin / 'fake-gcs-server'
  if not binary.exists():
    subprocess.run(['go', 'install', FAKE_GCS_SERVER], check=True, timeout=1200,
                   env=dict(os.environ, GOBIN=str(gobin)))
  return str(binary)


@contextlib.contextmanager
def fake_gcs_server(seed: Optional[pathlib.Path] = None) -> Iterator[subprocess.Popen]:
  """Starts fake-gcs-server in memory; yields its process, whose `endpoint` is for STORAGE_EMULATOR_HOST (not
  set here). `seed`: a folder of BUCKET/OBJECT files it loads at start (its -data flag), far faster than
  uploading 10^5 objects one request each."""
  port = free_port()
  proc = subprocess.Popen([fake_gcs_server_binary(), '-scheme', 'http', '-backend', 'memory', '-host', 'localhost',
                           '-port', str(port), '-public-host', f'localhost:{port}', '-external-url',
                           f'http://localhost:{port}', '-log-level', 'error'] + (['-data', str(seed)] if seed else []),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  try:
    wait_for_port(proc, port, 'fake-gcs-server')
    if seed:  # it listens at once but answers only once the seed is loaded
      with urllib.request.urlopen(f'http://localhost:{port}/storage/v1/b', timeout=1800):
        pass
    proc.endpoint = f'http://localhost:{port}'
    yield proc
  finally:
    proc.terminate()
    proc.wait(timeout=30)
