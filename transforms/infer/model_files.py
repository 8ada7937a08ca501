"""Remote models (gs://...) copied to local disk once per worker process, through Beam's filesystems.

TensorFlow, Keras and LiteRT read local files; this module brings a remote
model (a directory or a single file) to a local cache first. The cache folder
is named after the remote files' paths, sizes and modification times, so
another process on the same machine reuses a finished copy and a changed model
is copied anew; copies are made under a temporary name and renamed into place,
so a half-written copy is never used.
"""
import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from typing import Dict, List, Optional

from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems

from transforms.infer import models
from transforms.infer.models import locate

CACHE_ENV = 'MODEL_CACHE_DIR'  # where copies go; default <tmp>/beam_image_models
_copies: Dict[str, str] = {}  # location -> local path, for this process
_lock = threading.Lock()


def _listing(location: str) -> List[FileMetadata]:
  """The model's files: the location itself if it is a file, else everything under it."""
  location = location.rstrip('/')
  try:
    exact = FileSystems.match([location])[0].metadata_list
    if exact and not FileSystems.match([location + '/*'])[0].metadata_list:
      return exact
    return FileSystems.match([location + '/**'])[0].metadata_list
  except Exception as e:  # pylint: disable=broad-except
    raise models.ModelError(f'model not found: cannot list {location!r}: {e}') from e


def _copy(files: List[FileMetadata], location: str, target: str) -> None:
  partial = f'{target}.partial-{os.getpid()}-{threading.get_ident()}'
  for meta in files:
    relative = os.path.basename(location) if meta.path == location else meta.path[len(location) + 1:]
    local = os.path.join(partial, relative)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with FileSystems.open(meta.path, compression_type='uncompressed') as src, open(local, 'wb') as dst:
      shutil.copyfileobj(src, dst, length=16 << 20)
  try:
    os.rename(partial, target)
  except OSError:  # another process finished first: use its copy
    shutil.rmtree(partial, ignore_errors=True)


def local_copy(location: str, cache_dir: Optional[str] = None) -> str:
  """A local path for a remote model, copied at most once per process (and reused across processes)."""
  location = location.rstrip('/')
  cache_dir = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), 'beam_image_models')
  with _lock:
    if location not in _copies:
      files = _listing(location)
      if not files:
        raise models.ModelError(f'model not found: {location!r} matches no files')
      key = hashlib.sha1(repr(sorted((m.path, m.size_in_bytes, m.last_updated_in_seconds)
                                     for m in files)).encode('utf-8')).hexdigest()
      target = os.path.join(cache_dir, key)
      if not os.path.isdir(target):
        os.makedirs(cache_dir, exist_ok=True)
        _copy(files, location, target)
      single = len(files) == 1 and files[0].path == location
      _copies[location] = os.path.join(target, os.path.basename(location)) if single else target
    return _copies[location]


def fingerprint(location: str) -> str:
  """A digest of the model's files: a resumed run compares it to tell a changed model under the same name."""
  path = local_copy(location) if locate.is_remote(location) else locate.resolve(location)
  files = [path] if os.path.isfile(path) else sorted(
      os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names)
  digest = hashlib.sha256()
  for file in files:
    digest.update(os.path.relpath(file, path).encode('utf-8') + b'\0')
    with open(file, 'rb') as f:
      for chunk in iter(lambda f=f: f.read(16 << 20), b''):
        digest.update(chunk)
  return digest.hexdigest()


def load(spec: models.ModelSpec) -> models.ImageModel:
  """models.load for any location: remote paths are copied to local disk first."""
  if locate.is_remote(spec.location):
    return models.load(dataclasses.replace(spec, location=local_copy(spec.location)))
  return models.load(spec)
