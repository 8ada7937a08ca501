"""Read stage: ids from paths, globs expanded, unreadable files reported."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import read, records


def test_pattern_base_and_ids():
  assert read.pattern_base('/data/imgs/*.jpg') == '/data/imgs/'
  assert read.pattern_base('/data/**/x?.png') == '/data/'
  assert read.pattern_base('gs://bucket/a/b/*.jpg') == 'gs://bucket/a/b/'
  assert read.pattern_base('/data/imgs/cat.jpg') == '/data/imgs'
  assert read.file_id('/data/imgs/sub/cat.jpg', '/data/imgs/') == 'sub/cat'
  assert read.file_id('gs://bucket/a/dog.png', 'gs://bucket/a/') == 'dog'
  assert read.file_id('/data/imgs/cat.jpg', '/data/imgs') == 'cat'


def test_reads_every_file_once_from_several_globs(tmp_path):
  for name in ('a.jpg', 'b.jpg', 'c.png'):
    (tmp_path / name).write_bytes(name.encode())
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'd.jpg').write_bytes(b'd.jpg')
  with TestPipeline() as p:
    result = p | read.ReadImageFiles([f'{tmp_path}/*.jpg', f'{tmp_path}/*.png', f'{tmp_path}/sub/*'])
    got = result.images | beam.Map(lambda e: (e.ref.id, e.data))
    assert_that(got, equal_to([('a', b'a.jpg'), ('b', b'b.jpg'), ('c', b'c.png'), ('d', b'd.jpg')]))
    assert_that(result[records.ERRORS_TAG], equal_to([]), label='no errors')
