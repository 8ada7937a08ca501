"""Turns what a user passes as --model into a local path and a format name.

Remote paths (gs://...) are copied to local disk first by transforms.infer.model_files,
which uses Beam's filesystems; this module stays free of Beam.
"""
import os
import re
import zipfile

from transforms.infer.models.base import ModelError

TFHUB = 'https://tfhub.dev/'
# 'google/imagenet/mobilenet_v1_050_128/feature_vector/1': a TF-Hub handle without its host.
_SHORT_HANDLE = re.compile(r'^[\w-]+(/[\w.-]+)+/\d+$')
_SCHEME = re.compile(r'^([a-zA-Z][-a-zA-Z0-9+.]*)://')

TF1_HUB, SAVED_MODEL, KERAS, TFLITE = 'tf1_hub', 'saved_model', 'keras', 'tflite'
FORMATS = (TF1_HUB, SAVED_MODEL, KERAS, TFLITE)


def is_hub_handle(location: str) -> bool:
  return location.startswith(('http://', 'https://'))


def is_remote(location: str) -> bool:
  """A path on a remote filesystem (gs://, s3://, ...), to be copied to local disk before loading."""
  match = _SCHEME.match(location)
  return bool(match) and match.group(1) not in ('http', 'https', 'file')


def canonical(location: str) -> str:
  """The handle as tensorflow_hub expects it; short TF-Hub handles get their host."""
  if not os.path.exists(location) and _SHORT_HANDLE.match(location):
    return TFHUB + location
  return location


def resolve(location: str) -> str:
  """A local path for the model.

  Handles go through tensorflow_hub, which honors TFHUB_CACHE_DIR: a populated
  cache is used as is, offline, exactly as after an earlier download.
  """
  location = canonical(location)
  if is_hub_handle(location):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    try:
      return hub.resolve(location)
    except Exception as e:  # network errors, 404s, bad archives
      raise ModelError(f'cannot fetch TF-Hub model {location!r}: {e}') from e
  if is_remote(location):
    raise ModelError(f'{location!r} is remote: copy it with transforms.infer.model_files.local_copy before loading')
  if location.startswith('file://'):
    location = location[len('file://'):]
  if not os.path.exists(location):
    raise ModelError(f'model not found: {location!r} is neither an existing path nor a TF-Hub handle')
  return location


def detect_format(path: str) -> str:
  """One of FORMATS, from the files a model directory holds or a model file's contents."""
  if os.path.isdir(path):
    if os.path.exists(os.path.join(path, 'tfhub_module.pb')):
      return TF1_HUB
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
      return SAVED_MODEL
  elif os.path.isfile(path):
    with open(path, 'rb') as f:
      head = f.read(8)
    if head[4:8] == b'TFL3':  # the FlatBuffer file identifier of TFLite models
      return TFLITE
    if zipfile.is_zipfile(path):
      with zipfile.ZipFile(path) as archive:
        if 'config.json' in archive.namelist():  # the Keras v3 format: config.json + model.weights.h5
          return KERAS
  raise ModelError(f'not a model: {path!r} is not a TF1 Hub module or SavedModel directory (no tfhub_module.pb '
                   'or saved_model.pb), a .keras file or a .tflite file')
