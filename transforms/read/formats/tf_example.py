"""tf.train.Example records: the image, its id and passthrough values out; packed examples in.

The Example schema is declared below as TF declares it (example.proto and
feature.proto: same package, names and field numbers), so protobuf parses any
Example a TF pipeline wrote as TF would, without importing TensorFlow: that
import costs a reader 2-3 s of start-up and about 500 MB per worker process.
"""
import functools
import posixpath
from typing import Dict, Optional

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from transforms.read.formats import passthrough

IMAGE_KEY = 'image/encoded'
ID_KEY = 'image/id'
FILENAME_KEY = 'image/filename'
FORMAT_KEY = 'image/format'
_KINDS = {'bytes_list': passthrough.BYTES, 'int64_list': passthrough.INT, 'float_list': passthrough.FLOAT32}


# tensorflow/core/example/feature.proto and example.proto, the messages an Example is made of.
_SCHEMA = """
name: "tensorflow/core/example/example.proto" package: "tensorflow" syntax: "proto3"
message_type { name: "BytesList" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_BYTES } }
message_type { name: "FloatList"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_FLOAT options { packed: true } } }
message_type { name: "Int64List"
  field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_INT64 options { packed: true } } }
message_type { name: "Feature"
  field { name: "bytes_list" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.BytesList"
          oneof_index: 0 }
  field { name: "float_list" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.FloatList"
          oneof_index: 0 }
  field { name: "int64_list" number: 3 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.Int64List"
          oneof_index: 0 }
  oneof_decl { name: "kind" } }
message_type { name: "Features"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".tensorflow.Features.FeatureEntry" }
  nested_type { name: "FeatureEntry" options { map_entry: true }
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.Feature" } } }
message_type { name: "Example"
  field { name: "features" number: 1 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".tensorflow.Features" } }
"""


@functools.lru_cache(maxsize=1)
def _example_class():
  """Built in a pool of its own, so it never clashes with TF's classes when TF is loaded too."""
  pool = descriptor_pool.DescriptorPool()
  pool.Add(text_format.Parse(_SCHEMA, descriptor_pb2.FileDescriptorProto()))
  return message_factory.GetMessageClass(pool.FindMessageTypeByName('tensorflow.Example'))


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
