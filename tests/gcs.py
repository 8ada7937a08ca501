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
import subprocess
import sys
import tempfile
import uuid
from typing import Iterator, List

from benchmarks import gcs_server

_ENV = ('STORAGE_EMULATOR_HOST', 'GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT')


free_port = gcs_server.free_port
fake_gcs_server_binary = gcs_server.fake_gcs_server_binary


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
    gcs_server.wait_for_port(proc, port, 'GCS emulator')
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


@contextlib.contextmanager
def fake_gcs_server() -> Iterator[str]:
  """fake-gcs-server in memory (benchmarks/gcs_server.py); yields its endpoint, for STORAGE_EMULATOR_HOST (not set
  here)."""
  with gcs_server.fake_gcs_server() as proc:
    yield proc.endpoint
