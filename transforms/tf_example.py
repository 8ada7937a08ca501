"""tf.train.Example records: the image, its id and passthrough values out; packed examples in.

TF's own protobuf classes parse them (no TF ops run), so any Example a TF
pipeline wrote reads here as it would there.
"""
import posixpath
from typing import Dict, Optional

from transforms import passthrough

IMAGE_KEY = 'image/encoded'
ID_KEY = 'image/id'
FILENAME_KEY = 'image/filename'
FORMAT_KEY = 'image/format'
_KINDS = {'bytes_list': passthrough.BYTES, 'int64_list': passthrough.INT, 'float_list': passthrough.FLOAT32}


def _example_class():
  """TF's Example class, imported on first use: importing it loads all of TensorFlow (2-3 s per process), which
  jobs that read image files or tar shards never need."""
  from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel,no-name-in-module
  return example_pb2.Example


class ExampleError(ValueError):
  """The record is not a usable tf.Example."""


def features(data: bytes) -> Dict[str, passthrough.Values]:
  """Every feature of a serialized Example as (kind, values)."""
  example_class = _example_class()
  try:
    example = example_class.FromString(data)
  except Exception as e:  # protobuf's DecodeError and friends
    raise ExampleError(f'not a tf.train.Example ({type(e).__name__}: {e})') from e
  out = {}
  for key, feature in example.features.feature.items():
    kind = feature.WhichOneof('kind')
    if kind is None:
      out[key] = passthrough.Values(passthrough.BYTES, [])
    else:
      out[key] = passthrough.Values(_KINDS[kind], list(getattr(feature, kind).value))
  return out


def image_bytes(found: Dict[str, passthrough.Values], key: str) -> bytes:
  if key not in found:
    present = ', '.join(sorted(found)) or 'none'
    raise ExampleError(f'no image feature {key!r} (features present: {present}); set --image_key')
  value = found[key]
  if value.kind != passthrough.BYTES:
    raise ExampleError(f'image feature {key!r} holds {value.kind} values, not bytes')
  if len(value.values) != 1:
    raise ExampleError(f'image feature {key!r} holds {len(value.values)} values, not one')
  return value.values[0]


def record_id(found: Dict[str, passthrough.Values], key: str) -> Optional[str]:
  """The id feature, else the file name without extension, else None."""
  for candidate in (key, FILENAME_KEY):
    value = found.get(candidate)
    if value is None or len(value.values) != 1:
      continue
    raw = value.values[0]
    text = raw.decode('utf-8', 'replace') if isinstance(raw, bytes) else str(raw)
    return text if candidate == key else posixpath.splitext(text)[0]
  return None


def make_example(image: bytes, image_id: str, filename: str, image_format: str) -> bytes:
  """A serialized Example as the packer writes it: the image bytes unchanged, its id, file name and format."""
  example = _example_class()()
  feature = example.features.feature
  feature[IMAGE_KEY].bytes_list.value.append(image)
  feature[ID_KEY].bytes_list.value.append(image_id.encode('utf-8'))
  feature[FILENAME_KEY].bytes_list.value.append(filename.encode('utf-8'))
  feature[FORMAT_KEY].bytes_list.value.append(image_format.encode('utf-8'))
  return example.SerializeToString()
