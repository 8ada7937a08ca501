"""A real GCS emulator (gcp-storage-emulator) in its own process, for gs:// paths without a network.

google-cloud-storage, and so Beam's GCS filesystem, sends requests to
$STORAGE_EMULATOR_HOST when it is set. Beam's filesystem always asks for
application default credentials (its --no_auth only affects Dataflow's API
client) and retries for about 30 s per process before going anonymous, so the
emulator comes with a credentials file holding a ready access token that never
needs refreshing; the emulator ignores it. (The job's own --no_auth, see
transforms/gcs_auth.py, makes clients anonymous without any such file.)
"""
import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Iterator, List

_ENV = ('STORAGE_EMULATOR_HOST', 'GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, name: str, seconds: float = 60) -> None:
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


@contextlib.contextmanager
def emulator() -> Iterator[str]:
  """Starts the emulator, points STORAGE_EMULATOR_HOST at it (children inherit it), stops it after."""
  port = free_port()
  proc = subprocess.Popen([sys.executable, '-m', 'gcp_storage_emulator', 'start', '--host', 'localhost', '--port',
                           str(port), '--in-memory', '--quiet'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  previous = {name: os.environ.get(name) for name in _ENV}
  with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as credentials:
    json.dump({'type': 'authorized_user', 'client_id': 'emulator', 'client_secret': 'emulator',
               'refresh_token': 'unused', 'token': 'emulator', 'expiry': '2099-01-01T00:00:00Z'}, credentials)
  try:
    _wait_for_port(proc, port, 'GCS emulator')
    host = f'http://localhost:{port}'
    os.environ.update({'STORAGE_EMULATOR_HOST': host, 'GOOGLE_APPLICATION_CREDENTIALS': credentials.name,
                       'GOOGLE_CLOUD_PROJECT': 'emulator'})  # worker processes inherit them
    yield host
  finally:
    for name, value in previous.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
    os.unlink(credentials.name)
    proc.terminate()
    proc.wait(timeout=30)


def _client():
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  return storage.Client.create_anonymous_client()  # the endpoint comes from $STORAGE_EMULATOR_HOST


def _split(uri: str):
  bucket, _, name = uri[len('gs://'):].partition('/')
  return bucket, name


def new_bucket(prefix: str = 'test') -> str:
  """A fresh, empty bucket's name, so that tests sharing the session's emulator never see each other's files."""
  name = f'{prefix}-{uuid.uuid4().hex[:12]}'
  _client().create_bucket(name)
  return name


def upload(bucket_name: str, source: pathlib.Path, prefix: str) -> str:
  """Uploads a file or a directory tree to gs://bucket_name/prefix; returns that URI."""
  client = _client()
  bucket = client.lookup_bucket(bucket_name) or client.create_bucket(bucket_name)
  files = [source] if source.is_file() else sorted(p for p in source.rglob('*') if p.is_file())
  for path in files:
    name = prefix if path == source else f'{prefix}/{path.relative_to(source).as_posix()}'
    bucket.blob(name).upload_from_filename(str(path))
  return f'gs://{bucket_name}/{prefix}'


def list_uris(prefix: str) -> List[str]:
  """The URIs of the objects under a gs:// prefix, sorted."""
  bucket, name = _split(prefix)
  return sorted(f'gs://{bucket}/{b.name}' for b in _client().list_blobs(bucket, prefix=name))


def download(prefix: str, local_dir: pathlib.Path) -> pathlib.Path:
  """Every object under a gs:// prefix into local_dir, at the same relative paths."""
  bucket, name = _split(prefix.rstrip('/') + '/')
  for blob in _client().list_blobs(bucket, prefix=name):
    target = local_dir / blob.name[len(name):]
    target.parent.mkdir(parents=True, exist_ok=True)
    blob.download_to_filename(str(target))
  return local_dir


FAKE_GCS_SERVER = 'github.com/fsouza/fake-gcs-server@v1.56.1'


def fake_gcs_server_binary() -> str:
  """fake-gcs-server, installed into ~/go/bin with `go install` (about 2.5 minutes) if it is not there.

  Unlike gcp-storage-emulator, it enforces preconditions as GCS does (if_generation_match=0 on an existing
  object: 412), which the output's lease relies on (transforms/output/lease.py)."""
  gobin = pathlib.Path(os.environ.get('GOBIN') or pathlib.Path.home() / 'go' / 'bin')
  binary = gobin / 'fake-gcs-server'
  if not binary.exists():
    subprocess.run(['go', 'install', FAKE_GCS_SERVER], check=True, timeout=1200,
                   env=dict(os.environ, GOBIN=str(gobin)))
  return str(binary)


@contextlib.contextmanager
def fake_gcs_server() -> Iterator[str]:
  """Starts fake-gcs-server in memory; yields its endpoint, for STORAGE_EMULATOR_HOST (not set here)."""
  port = free_port()
  proc = subprocess.Popen([fake_gcs_server_binary(), '-scheme', 'http', '-backend', 'memory', '-host', 'localhost',
                           '-port', str(port), '-public-host', f'localhost:{port}', '-external-url',
                           f'http://localhost:{port}', '-log-level', 'error'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  try:
    _wait_for_port(proc, port, 'fake-gcs-server')
    yield f'http://localhost:{port}'
  finally:
    proc.terminate()
    proc.wait(timeout=30)
