"""tf.Example parsing: what TF writes reads back as features, image, id and its fallbacks."""
import pathlib
import subprocess
import sys

import pytest
import tensorflow as tf

from tests import datagen
from transforms.read.formats import tf_example
from transforms.read.formats.passthrough import Values


def test_features_as_tf_wrote_them():
  data = datagen.example(image__encoded=[b'\xff\xd8'], image__class__label=[3], weight=[0.5])
  found = tf_example.features(data)
  assert found['image/encoded'] == Values('bytes', [b'\xff\xd8'])
  assert found['image/class/label'] == Values('int64', [3])
  assert found['weight'] == Values('float32', [0.5])
  assert tf_example.image_bytes(found, 'image/encoded') == b'\xff\xd8'


def test_id_falls_back_to_file_name_without_extension():
  found = tf_example.features(datagen.example(image__id=[b'x/1'], image__filename=[b'a.JPEG']))
  assert tf_example.record_id(found, 'image/id') == 'x/1'
  found = tf_example.features(datagen.example(image__filename=[b'n01/a.JPEG']))
  assert tf_example.record_id(found, 'image/id') == 'n01/a'
  assert tf_example.record_id(tf_example.features(datagen.example(key=[42])), 'key') == '42'
  assert tf_example.record_id(tf_example.features(datagen.example(other=[b'1'])), 'image/id') is None


@pytest.mark.parametrize('features, words', [
    ({'image__id': [b'a']}, "no image feature 'image/encoded' \\(features present: image/id\\)"),
    ({'image__encoded': [1]}, 'holds int64 values, not bytes'),
    ({'image__encoded': [b'a', b'b']}, 'holds 2 values, not one'),
])
def test_unusable_image_feature_says_why(features, words):
  with pytest.raises(tf_example.ExampleError, match=words):
    tf_example.image_bytes(tf_example.features(datagen.example(**features)), 'image/encoded')


def test_not_an_example():
  with pytest.raises(tf_example.ExampleError, match='not a tf.train.Example'):
    tf_example.features(b'\xff\xff\xff garbage')


def test_packed_example_parses_with_tensorflow():
  data = tf_example.make_example(b'JPEGBYTES', 'sub/cat', 'cat.jpg', 'jpeg')
  parsed = tf.io.parse_single_example(data, {k: tf.io.FixedLenFeature([], tf.string) for k in (
      'image/encoded', 'image/id', 'image/filename', 'image/format')})
  assert {k: v.numpy() for k, v in parsed.items()} == {
      'image/encoded': b'JPEGBYTES', 'image/id': b'sub/cat', 'image/filename': b'cat.jpg',
      'image/format': b'jpeg'}


def test_parses_as_tensorflow_parses():
  """Every kind, empty and negative values, float32 precision and non-ASCII keys read as TF's own class reads them."""
  data = datagen.example(a=[b'', b'\x00\xff'], b=[-(2 ** 63), 0, 2 ** 63 - 1], c=[0.1, -1e30, 3.0], d__é=[b'x'],
                         empty=[])
  theirs = tf.train.Example.FromString(data).features.feature
  ours = tf_example.features(data)
  assert set(ours) == set(theirs)
  for key, feature in theirs.items():
    kind = feature.WhichOneof('kind')
    assert ours[key].values == list(getattr(feature, kind).value if kind else []), key


def test_reading_examples_does_not_import_tensorflow():
  data = datagen.example(image__encoded=[b'\xff\xd8'], image__id=[b'x'])
  code = ('import sys; from transforms.read.formats import tf_example; '
          f'found = tf_example.features({data!r}); '
          'assert tf_example.image_bytes(found, "image/encoded") == b"\\xff\\xd8"; '
          'print(sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"))')
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True,
                       cwd=pathlib.Path(__file__).parent.parent)
  assert out.stdout.strip() == '[]', out.stdout
