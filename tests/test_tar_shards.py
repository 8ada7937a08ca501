"""Tar reader: img2dataset-style shards read in parallel, id = key, captions and JSON fields as
passthrough columns, samples without an image and broken shards reported by member."""
import io
import json
import tarfile

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests import checks
from transforms import elements
from transforms.read import outcomes, tar_shards
from transforms.read.formats import passthrough
from transforms.read.settings import ReadSettings


def _shard(path, samples, mode='w'):
  """Writes an img2dataset-style shard: KEY.jpg, KEY.json with url and similarity, KEY.txt with a caption."""
  with tarfile.open(path, mode) as tar:
    for key, members in samples:
      for ext, data in members.items():
        info = tarfile.TarInfo(f'{key}.{ext}')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return path


def _members(i, image_ext='jpg'):
  meta = {'url': f'http://example.com/{i}.jpg', 'similarity': i / 10, 'key': f'{i:09d}', 'status': 'success'}
  return {image_ext: f'image {i}'.encode(), 'json': json.dumps(meta).encode(), 'txt': f'caption {i}'.encode()}


def _run(patterns, images, errors=(), settings=ReadSettings(), stopped=()):
  with TestPipeline() as p:
    read = p | tar_shards.ReadTarShards(patterns, settings)
    got = read['images'] | 'Images' >> beam.Map(lambda e: (e.ref.id, e.data, e.ref.source, e.ref.extra))
    assert_that(got, equal_to(images))
    got_errors = read[elements.ERRORS_TAG] | 'Errors' >> beam.Map(lambda e: (e.id, e.source, e.stage, e.message))
    assert_that(got_errors, checks.errors_like(errors), label='errors')
    assert_that(read[outcomes.STOPPED_TAG], equal_to(list(stopped)), label='stopped')


def test_shards_with_captions_and_metadata(tmp_path):
  first = _shard(tmp_path / '00000.tar', [(f'{i:09d}', _members(i)) for i in range(3)])
  second = _shard(tmp_path / '00001.tar.gz', [('000000003', _members(3, 'png')), ('000000004', {'txt': b'lost'})],
                  'w:gz')
  columns = (passthrough.Column('txt', 'string'), passthrough.Column('url', 'string'),
             passthrough.Column('similarity', 'float64'))
  expected = [(f'{i:09d}', f'image {i}'.encode(), f'{path}#member={i:09d}.{ext}',
               {'txt': f'caption {i}', 'url': f'http://example.com/{i}.jpg', 'similarity': i / 10})
              for i, path, ext in [(0, first, 'jpg'), (1, first, 'jpg'), (2, first, 'jpg'), (3, second, 'png')]]
  _run([f'{tmp_path}/*.tar', f'{tmp_path}/*.tar.gz'], expected,
       [('000000004', f'{second}#member=000000004.txt', 'read', "sample '000000004' has no image member")],
       ReadSettings(columns=columns))


def test_truncated_shard_keeps_what_came_before(tmp_path):
  whole = _shard(tmp_path / 'whole.tar', [(f'k{i}', {'jpg': b'%d' % i * 3000}) for i in range(5)]).read_bytes()
  cut = tmp_path / 'cut.tar'
  cut.write_bytes(whole[:512 * 23])  # three whole samples (header + 6 blocks each), then part of the fourth
  _run([str(cut)], [(f'k{i}', b'%d' % i * 3000, f'{cut}#member=k{i}.jpg', None) for i in range(3)],
       [(f'{cut}#member=k2.jpg', f'{cut}#member=k2.jpg', 'read', 'shard unreadable after member k2.jpg')],
       stopped=[f'{cut}#member=k2.jpg'])


def test_a_damaged_member_header_stops_the_shard_and_says_where(tmp_path):
  """tarfile ends the archive quietly at a bad header after the first: the samples after it would vanish."""
  path = _shard(tmp_path / 'damaged.tar', [(f'k{i}', {'jpg': b'%d' % i * 700, 'txt': b'caption'}) for i in range(7)])
  data = bytearray(path.read_bytes())
  data[data.find(b'k2.jpg') + 100] ^= 0xFF  # one byte of the 3rd sample's header (its mode field)
  path.write_bytes(bytes(data))
  _run([str(path)], [(f'k{i}', b'%d' % i * 700, f'{path}#member=k{i}.jpg', None) for i in range(2)],
       [(f'{path}#member=k1.txt', f'{path}#member=k1.txt', 'read',
         'shard unreadable after member k1.txt: the member header at byte 5120 is damaged')],
       stopped=[f'{path}#member=k1.txt'])
