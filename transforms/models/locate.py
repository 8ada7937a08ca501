"""Turns what a user passes as --model into a local path and a format name."""
import os
import re

from transforms.models.base import ModelError

TFHUB = 'https://tfhub.dev/'
# 'google/imagenet/mobilenet_v1_050_128/feature_vector/1': a TF-Hub handle without its host.
_SHORT_HANDLE = re.compile(r'^[\w-]+(/[\w.-]+)+/\d+$')


def is_hub_handle(location: str) -> bool:
  return location.startswith(('http://', 'https://'))


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
  if not os.path.exists(location):
    raise ModelError(f'model not found: {location!r} is neither an existing path nor a TF-Hub handle')
  return location


def detect_format(path: str) -> str:
  """'tf1_hub' or 'saved_model', from the files a model directory holds."""
  if os.path.isdir(path):
    if os.path.exists(os.path.join(path, 'tfhub_module.pb')):
      return 'tf1_hub'
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
      return 'saved_model'
  raise ModelError(f'not a model: {path!r} holds no tfhub_module.pb or saved_model.pb')
