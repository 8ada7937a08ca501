"""The launcher's model check, remembered: what a model said about itself, kept by the model files' digest.

The launcher loads the model before any data is read, so that a wrong model or
model option fails at once; with TensorFlow that costs about 5 s of every
job's start-up (importing TF, loading, pruning, a probe batch) before the
workers load the model again. A check that passed is kept here, under a key
made of the model files' SHA-256 (the digest job.json records), every model
option (transforms.infer.models.ModelSpec), the versions of the libraries that
load models and the source of this project's model backends: the same job with
the same model bytes, code and libraries then reads the answer instead of
loading the model. A failed check is never kept, so a bad model or option
fails as before; TF-Hub handles (no local files to digest without
tensorflow_hub) are always loaded.

Entries live beside the remote-model copies (MODEL_CACHE_DIR, default
<tmp>/beam_image_models) in info/, one small JSON file each, written under a
temporary name and renamed into place.
"""
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pathlib
import tempfile
from importlib import metadata
from typing import Optional

from transforms.infer import model_files, models
from transforms.infer.models import locate

_BACKEND_LIBRARIES = ('tensorflow', 'tensorflow-hub', 'tf-keras', 'keras', 'ai-edge-litert')
_MODELS_PACKAGE = pathlib.Path(models.__file__).parent


@functools.lru_cache(maxsize=1)
def _code_and_libraries() -> str:
  """What else decides a load's outcome: this project's backends' source and the backend libraries' versions."""
  digest = hashlib.sha256()
  for source in sorted(_MODELS_PACKAGE.glob('*.py')):
    digest.update(source.name.encode('utf-8') + b'\0' + source.read_bytes())
  for name in _BACKEND_LIBRARIES:
    try:
      version = metadata.version(name)
    except metadata.PackageNotFoundError:
      version = '-'
    digest.update(f'{name}={version}\0'.encode('utf-8'))
  return digest.hexdigest()


def _entry(spec: models.ModelSpec) -> Optional[pathlib.Path]:
  """The file that holds (or will hold) the check of this spec, or None when it cannot be cached."""
  if locate.is_hub_handle(locate.canonical(spec.location)):
    return None
  if not locate.is_remote(spec.location):
    locate.detect_format(locate.resolve(spec.location))  # a path that is no model fails here, before hashing it
  fields = dataclasses.asdict(spec)
  fields['location'] = None  # the bytes matter, not where they are
  key = json.dumps({'model_sha256': model_files.fingerprint(spec.location), 'spec': fields,
                    'code': _code_and_libraries()}, sort_keys=True)
  root = os.environ.get(model_files.CACHE_ENV) or os.path.join(tempfile.gettempdir(), 'beam_image_models')
  return pathlib.Path(root, 'info', hashlib.sha256(key.encode('utf-8')).hexdigest() + '.json')


def _read(path: pathlib.Path) -> Optional[models.ModelInfo]:
  try:
    fields = json.loads(path.read_text(encoding='utf-8'))
    for name in ('input_size', 'input_range', 'outputs'):
      fields[name] = tuple(fields[name])
    return models.ModelInfo(**fields)
  except (OSError, ValueError, TypeError, KeyError):
    return None  # absent, or unreadable: check again


def _write(path: pathlib.Path, info: models.ModelInfo) -> None:
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f'{path.name}.partial-{os.getpid()}')
    partial.write_text(json.dumps(dataclasses.asdict(info)), encoding='utf-8')
    os.replace(partial, path)
  except OSError as e:  # a read-only or full disk: the next job checks again
    logging.debug('model check not cached at %s: %s', path, e)


def model_info(spec: models.ModelSpec) -> models.ModelInfo:
  """The ModelInfo a load of `spec` gives, loading the model only when no check of it passed before;
  raises ModelError as models.load does."""
  path = _entry(spec)
  cached = _read(path) if path else None
  if cached is not None:
    logging.info('model check: passed before for the same model files and options (%s)', path)
    return cached
  info = model_files.load(spec).info
  if path:
    _write(path, info)
  return info
