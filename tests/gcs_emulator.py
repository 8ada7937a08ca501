"""A real GCS server for tests: gcp-storage-emulator in a subprocess, reached the way users reach GCS.

google-cloud-storage sends every request to $STORAGE_EMULATOR_HOST when it is
set, and Beam's gs:// filesystem uses that library, so the job under test runs
unchanged; pass it --no_auth (transforms/gcs_auth.py) so that no process waits
for Google credentials. Worker processes started while the emulator runs
inherit the variable.
"""
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Iterator, List

from google.cloud import storage

ENV = 'STORAGE_EMULATOR_HOST'


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _split(uri: str):
  bucket, _, name = uri[len('gs://'):].partition('/')
  return bucket, name


class GcsEmulator:
  """A running emulator: make buckets, move files in and out, list what is there."""

  def __init__(self, endpoint: str):
    self.endpoint = endpoint

  def client(self) -> storage.Client:
    return storage.Client.create_anonymous_client()  # the endpoint comes from $STORAGE_EMULATOR_HOST

  def new_bucket(self, prefix: str = 'test') -> str:
    """A fresh, empty bucket; returns 'gs://NAME'."""
    name = f'{prefix}-{uuid.uuid4().hex[:12]}'
    self.client().create_bucket(name)
    return f'gs://{name}'

  def upload(self, local: pathlib.Path, uri: str) -> str:
    bucket, name = _split(uri)
    self.client().bucket(bucket).blob(name).upload_from_filename(str(local))
    return uri

  def upload_dir(self, local_dir: pathlib.Path, prefix: str) -> List[str]:
    """Every file under local_dir, at the same relative paths under prefix."""
    return [self.upload(path, f'{prefix.rstrip("/")}/{path.relative_to(local_dir).as_posix()}')
            for path in sorted(local_dir.rglob('*')) if path.is_file()]

  def list(self, prefix: str) -> List[str]:
    bucket, name = _split(prefix)
    return sorted(f'gs://{bucket}/{b.name}' for b in self.client().list_blobs(bucket, prefix=name))

  def download_dir(self, prefix: str, local_dir: pathlib.Path) -> pathlib.Path:
    """Every object under prefix into local_dir, at the same relative paths."""
    bucket, name = _split(prefix.rstrip('/') + '/')
    for blob in self.client().list_blobs(bucket, prefix=name):
      target = local_dir / blob.name[len(name):]
      target.parent.mkdir(parents=True, exist_ok=True)
      blob.download_to_filename(str(target))
    return local_dir


@contextlib.contextmanager
def running(timeout_seconds: float = 60) -> Iterator[GcsEmulator]:
  """Starts the emulator (in memory), points $STORAGE_EMULATOR_HOST at it, and stops it afterwards."""
  port = _free_port()
  endpoint = f'http://127.0.0.1:{port}'
  proc = subprocess.Popen(
      [sys.executable, '-m', 'gcp_storage_emulator', 'start', '--host', '127.0.0.1', '--port', str(port),
       '--in-memory', '--quiet'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  previous = os.environ.get(ENV)
  try:
    deadline = time.monotonic() + timeout_seconds
    while True:
      if proc.poll() is not None:
        raise RuntimeError(f'GCS emulator exited with {proc.returncode}: {proc.stdout.read().decode()[-2000:]}')
      try:
        with urllib.request.urlopen(endpoint + '/', timeout=1):
          break
      except OSError:
        if time.monotonic() > deadline:
          raise RuntimeError(f'GCS emulator did not answer on {endpoint} within {timeout_seconds} s') from None
        time.sleep(0.1)
    os.environ[ENV] = endpoint
    yield GcsEmulator(endpoint)
  finally:
    if previous is None:
      os.environ.pop(ENV, None)
    else:
      os.environ[ENV] = previous
    proc.terminate()
    try:
      proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait()
