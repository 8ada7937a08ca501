"""Read stage dispatch: formats detected from names or content, options checked against the formats
found, passthrough types inferred from the first records, every format read in one pipeline."""
import gzip
import io
import json
import tarfile

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests import datagen
from transforms import elements
from transforms.read.formats import detect, passthrough, tfrecord
from transforms.read.plan import InputError, plan_inputs
from transforms.read.readers import ReadImages
from transforms.read.settings import ReadSettings

JPEG = datagen.image_variants()['exif_orientation_6'][0]


def _tar_bytes(members):
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode='w') as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buf.getvalue()


@pytest.fixture(name='corpus')
def corpus_fixture(tmp_path):
  """One input of each format, two of them without telling extensions."""
  (tmp_path / 'imgs').mkdir()
  (tmp_path / 'imgs' / 'a.jpg').write_bytes(JPEG)
  (tmp_path / 'imgs' / 'b').write_bytes(JPEG)  # no extension: detected by content
  examples = [datagen.example(image__encoded=[JPEG], image__id=[b'rec0'], label=[1], url=[b'http://0']),
              datagen.example(image__encoded=[JPEG], image__id=[b'rec1'], label=[2])]
  datagen.write_tfrecord(tmp_path / 'train-00000-of-00001', examples)
  meta = json.dumps({'url': 'http://t0', 'label': 7}).encode()
  (tmp_path / 'shard.tar').write_bytes(_tar_bytes([('t0.jpg', JPEG), ('t0.json', meta), ('t0.txt', b'cap')]))
  return tmp_path


@pytest.mark.parametrize('name, fmt', [('x.tfrecord', 'tfrecord'), ('x.tfrecords.gz', 'tfrecord'),
                                       ('x.tar', 'tar'), ('x.tar.gz', 'tar'), ('x.tgz', 'tar'), ('x.JPG', 'images'),
                                       ('x.webp', 'images'), ('train-00001-of-01024', None)])
def test_format_by_name(name, fmt):
  assert detect.format_by_name(name) == fmt


def test_format_by_content():
  records_head = tfrecord.encode_record(b'x' * 600)
  assert detect.format_by_content(records_head) == 'tfrecord'
  assert detect.format_by_content(gzip.compress(records_head)) == 'tfrecord'
  assert detect.format_by_content(_tar_bytes([('k.jpg', b'x')])) == 'tar'
  assert detect.format_by_content(gzip.compress(_tar_bytes([('k.jpg', b'x')]))) == 'tar'
  for data, _, _ in datagen.image_variants().values():
    assert detect.format_by_content(data[:1024]) == 'images'
  assert detect.format_by_content(b'<html>not anything</html>') is None


def test_plan_detects_each_input_and_types_passthrough_columns(corpus):
  patterns = [f'{corpus}/imgs/*', f'{corpus}/train-*', f'{corpus}/*.tar']
  plan = plan_inputs(patterns[:1])
  assert plan.inputs == ((patterns[0], 'images'),)
  keys = (('label', None), ('url', None), ('txt', None), ('w', 'float32'))
  plan = plan_inputs(patterns[1:], passthrough_keys=keys)
  assert plan.inputs == ((patterns[1], 'tfrecord'), (patterns[2], 'tar'))
  assert plan.settings.columns == (passthrough.Column('label', 'int64'), passthrough.Column('url', 'string'),
                                   passthrough.Column('txt', 'string'), passthrough.Column('w', 'float32'))
  assert plan_inputs(patterns[1:2], 'tar').inputs == ((patterns[1], 'tar'),)  # told, not detected


def test_plan_refuses_what_cannot_work(corpus):
  (corpus / 'page.html').write_text('<html></html>')
  gz = gzip.compress((corpus / 'train-00000-of-00001').read_bytes())
  (corpus / 'zipped-00000').write_bytes(gz)
  cases = [
      (([f'{corpus}/nothing/*'],), {}, '--input matches no files'),
      (([str(corpus / 'missing.txt')],), {}, '--input matches no files'),
      (([str(corpus / 'page.html')],), {}, 'cannot tell the format'),
      (([f'{corpus}/zipped-*'],), {}, 'GZIP-compressed but has no .gz extension: pass --compression gzip'),
      (([f'{corpus}/imgs/*'],), {'passthrough_keys': (('label', None),)}, 'not to image files'),
      (([f'{corpus}/imgs/*'],), {'settings': ReadSettings(id_key='k')}, '--id_key applies to TFRecord'),
      (([f'{corpus}/imgs/*'],), {'settings': ReadSettings(image_key='k')}, 'not to image files'),
      (([f'{corpus}/train-*'],), {'passthrough_keys': (('nope', None),)},
       "'nope' not found in the first 2 records"),
  ]
  for args, kwargs, words in cases:
    with pytest.raises(InputError, match=words):
      plan_inputs(*args, **kwargs)


def test_every_format_in_one_pipeline(corpus):
  plan = plan_inputs([f'{corpus}/imgs/*', f'{corpus}/train-*', f'{corpus}/*.tar'])
  with TestPipeline() as p:
    result = p | ReadImages(plan)
    assert_that(result['images'] | beam.Map(lambda e: (e.ref.id, e.data == JPEG)),
                equal_to([('a', True), ('b', True), ('rec0', True), ('rec1', True), ('t0', True)]))
    assert_that(result[elements.ERRORS_TAG], equal_to([]), label='no errors')
