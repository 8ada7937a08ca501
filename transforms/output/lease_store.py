"""Where a lease lives and how it changes atomically: local disk and gs://, each with a token that a
conditional replace or delete checks (transforms/output/lease.py holds the rules: who holds it, when it is stale).

On local disk the token is the lease's content: it is written beside and hard-linked into place (fails if it
exists, as O_EXCL does, and is never seen half-written), and replaced or deleted under an flock on the folder.
On gs:// the token is the object's generation, and every write is conditional on it (if_generation_match);
Beam's FileSystems has no preconditions, so gs:// goes through google-cloud-storage.
"""
import contextlib
import datetime
import fcntl
import json
import os
import uuid
from typing import Optional, Tuple

STAMP = '%Y-%m-%dT%H:%M:%SZ'  # the heartbeat's format


def now_stamp() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime(STAMP)


class Local:
  """Local disk; the token of a lease is its content."""

  @staticmethod
  def create(path: str, data: str) -> Optional[str]:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temp = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, 'w') as f:
      f.write(data)
    try:
      os.link(temp, path)  # atomic, and fails if the lease exists: like O_EXCL, but never seen half-written
    except FileExistsError:
      return None
    finally:
      os.unlink(temp)
    return data

  @staticmethod
  def read(path: str) -> Optional[Tuple[dict, str]]:
    try:
      with open(path, encoding='utf-8') as f:
        data = f.read()
    except FileNotFoundError:
      return None
    try:
      return json.loads(data), data
    except ValueError:  # not written by this module: a fresh lease of an unknown holder
      return {'run_id': '?', 'heartbeat': now_stamp()}, data

  def refresh(self, path: str, data: str, token: str) -> Optional[str]:
    """Replaces the lease if it still is `token`; under the folder's lock, so the check and the swap are one."""
    with _folder_lock(path):
      current = self.read(path)
      if not current or current[1] != token:
        return None
      temp = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
      with open(temp, 'w', encoding='utf-8') as f:
        f.write(data)
      os.replace(temp, path)  # never absent: no one can create it in between
      return data

  take_over = refresh

  @staticmethod
  def updated(path: str, token: str) -> Optional[datetime.datetime]:
    """When the lease, still `token`, was last written, by the filesystem's clock; None if it changed."""
    try:
      with open(path, encoding='utf-8') as f:
        if f.read() != token:
          return None
        return datetime.datetime.fromtimestamp(os.fstat(f.fileno()).st_mtime, datetime.timezone.utc)
    except FileNotFoundError:
      return None

  def delete(self, path: str, token: str) -> bool:
    with _folder_lock(path):
      current = self.read(path)
      if not current or current[1] != token:
        return False
      os.unlink(path)
      return True


@contextlib.contextmanager
def _folder_lock(path: str):
  """An exclusive flock on the lease's folder (local disk): read-check-write steps of launches exclude each other."""
  fd = os.open(os.path.dirname(path), os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


class Gcs:
  """gs://: preconditions on the object's generation (the token)."""
  _client = None

  @classmethod
  def _blob(cls, path: str):
    from google.cloud import storage  # pylint: disable=import-outside-toplevel
    if cls._client is None:
      if os.environ.get('STORAGE_EMULATOR_HOST'):
        cls._client = storage.Client.create_anonymous_client()
      else:
        cls._client = storage.Client()
    bucket, _, name = path[len('gs://'):].partition('/')
    return cls._client.bucket(bucket).blob(name)

  def _write(self, path: str, data: str, generation: int) -> Optional[int]:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    blob = self._blob(path)
    try:
      blob.upload_from_string(data, content_type='application/json', if_generation_match=generation)
    except (exceptions.PreconditionFailed, exceptions.NotFound):
      return None
    return blob.generation

  def create(self, path: str, data: str) -> Optional[int]:
    return self._write(path, data, 0)  # only if no object exists

  def read(self, path: str) -> Optional[Tuple[dict, int]]:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    blob = self._blob(path)
    try:
      data = blob.download_as_bytes()
    except exceptions.NotFound:
      return None
    return json.loads(data.decode('utf-8')), blob.generation

  def refresh(self, path: str, data: str, token: int) -> Optional[int]:
    return self._write(path, data, token)

  take_over = refresh

  def updated(self, path: str, token: int) -> Optional[datetime.datetime]:
    """When the lease object, still generation `token`, was last written, by GCS's clock (its `updated`); None
    if it changed."""
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    blob = self._blob(path)
    try:
      blob.reload()
    except exceptions.NotFound:
      return None
    return blob.updated if blob.generation == token else None

  def delete(self, path: str, token: int) -> bool:
    from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
    try:
      self._blob(path).delete(if_generation_match=token)
    except (exceptions.PreconditionFailed, exceptions.NotFound):
      return False
    return True


def backend(path: str):
  if path.startswith('gs://'):
    return Gcs()
  if '://' in path:
    raise ValueError(f'no lease on {path}: only local paths and gs:// are supported')
  return Local()
