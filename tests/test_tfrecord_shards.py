"""TFRecord reader: files cut into many ranges still yield each record once; ids, passthrough values,
unusable records and damaged bytes become rows that say where; gs:// ranges through a real emulator."""
import gzip
import shutil

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests import checks, datagen, gcs
from transforms import elements, gcs_auth
from transforms.read import tfrecord_shards
from transforms.read.formats import passthrough, tfrecord
from transforms.read.settings import ReadSettings


def _run(patterns, images, errors=(), settings=ReadSettings(), split_bytes=None, argv=()):
  """Runs the reader and checks (id, bytes, source, extra) of its images and its errors."""
  options = PipelineOptions(list(argv))
  gcs_auth.apply(options)
  with TestPipeline(options=options) as p:
    read = p | tfrecord_shards.ReadTFRecords(patterns, settings, split_bytes)
    got = read['images'] | 'Images' >> beam.Map(lambda e: (e.ref.id, e.data, e.ref.source, e.ref.extra))
    assert_that(got, equal_to(images))
    got_errors = read[elements.ERRORS_TAG] | 'Errors' >> beam.Map(lambda e: (e.id, e.source, e.stage, e.message))
    assert_that(got_errors, checks.errors_like(errors), label='errors')


def _photo_like_examples(count):
  return [datagen.example(image__encoded=[_image(i)], image__id=[f'id{i:04d}'.encode()]) for i in range(count)]


def _image(i):
  return f'image {i} '.encode() * (i % 50 + 1)


def _offsets(examples):
  offsets, pos = [], 0
  for e in examples:
    offsets.append(pos)
    pos += len(e) + tfrecord.OVERHEAD
  return offsets


def _expected(path, examples, indices):
  offsets = _offsets(examples)
  return [(f'id{i:04d}', _image(i), f'{path}#offset={offsets[i]}', None) for i in indices]


def test_many_small_ranges_yield_each_record_once(tmp_path):
  examples = _photo_like_examples(300)
  path = datagen.write_tfrecord(tmp_path / 'big.tfrecord', examples)
  gz = datagen.write_tfrecord(tmp_path / 'small.tfrecord.gz', examples[:20], gzip=True)
  # About 100 ranges for the uncompressed file; the compressed one is read whole.
  _run([str(path), str(gz)], _expected(path, examples, range(300)) + _expected(gz, examples, range(20)),
       split_bytes=997)


def test_foreign_examples_ids_keys_and_unusable_records(tmp_path):
  examples = [
      datagen.example(img=[b'A'], image__filename=[b'n01/a.JPEG'], label=[3], url=[b'http://a']),
      datagen.example(img=[b'B'], key=[b'b-id'], label=[4]),
      datagen.example(image__filename=[b'c.jpg'], label=[5]),  # no image
      datagen.example(img=[7], image__filename=[b'd.jpg']),  # image of the wrong kind
      b'definitely not an example',
  ]
  path = datagen.write_tfrecord(tmp_path / 'foreign-00000-of-00001', examples)
  columns = (passthrough.Column('label', 'int64'), passthrough.Column('url', 'string'))
  at = [f'{path}#offset={o}' for o in _offsets(examples)]
  _run([f'{tmp_path}/foreign-*'],
       [('b-id', b'B', at[1], {'label': 4, 'url': None}),
        ('n01/a', b'A', at[0], {'label': 3, 'url': 'http://a'})],
       [('c', at[2], 'read', "no image feature 'img'"), ('d', at[3], 'read', 'holds int64 values'),
        (at[4], at[4], 'read', 'not a tf.train.Example')],
       ReadSettings('img', 'key', 'auto', columns))


def test_damaged_records_are_reported_where_they_are_and_the_rest_is_read(tmp_path):
  examples = _photo_like_examples(60)
  offsets = _offsets(examples)
  data = bytearray(b''.join(tfrecord.encode_record(e) for e in examples))
  data[offsets[30] + tfrecord.HEADER_BYTES + 3] ^= 0x55  # the data of record 30
  data[offsets[45] + 2] ^= 0x55  # the length of record 45
  path = tmp_path / 'damaged.tfrecord'
  path.write_bytes(bytes(data))
  at = [f'{path}#offset={o}' for o in offsets]
  _run([str(path)], _expected(path, examples, [i for i in range(60) if i not in (30, 45)]),
       [(at[30], at[30], 'read', 'data CRC mismatch'),
        (at[45], at[45], 'read', f'bytes {offsets[45]}-{offsets[46]} skipped: corrupt record header')],
       split_bytes=500)


def test_gzip_by_option_for_a_file_without_extension(tmp_path):
  examples = _photo_like_examples(5)
  source = datagen.write_tfrecord(tmp_path / 'x.tfrecord.gz', examples, gzip=True)
  shutil.copy(source, tmp_path / 'shard-00000')
  assert gzip.decompress((tmp_path / 'shard-00000').read_bytes()).startswith(tfrecord.encode_record(examples[0]))
  _run([f'{tmp_path}/shard-*'], _expected(tmp_path / 'shard-00000', examples, range(5)),
       settings=ReadSettings(compression='gzip'))


@pytest.mark.usefixtures('gcs_emulator')
def test_ranges_over_gcs(tmp_path):
  examples = _photo_like_examples(120)
  path = datagen.write_tfrecord(tmp_path / 'remote.tfrecord', examples)
  uri = gcs.upload(gcs.new_bucket(), path, 'shards/remote.tfrecord')
  _run([uri.replace('remote', '*')], _expected(uri, examples, range(120)), split_bytes=2000,
       argv=['--no_auth'])
