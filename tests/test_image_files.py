"""Image files by globs and lists: every file once, its id, unreadable files reported."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import elements
from transforms.read import image_files


def _read(patterns):
  p = TestPipeline()
  result = p | image_files.ReadImageFiles(patterns)
  return p, result


def test_reads_every_file_once_from_several_globs_and_a_list(tmp_path):
  for name in ('a.jpg', 'b.jpg', 'c.png'):
    (tmp_path / name).write_bytes(name.encode())
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'd.jpg').write_bytes(b'd.jpg')
  (tmp_path / 'more').mkdir()
  (tmp_path / 'more' / 'e.webp').write_bytes(b'e.webp')
  (tmp_path / 'list.txt').write_text('more/e.webp\n')
  p, result = _read([f'{tmp_path}/*.jpg', f'{tmp_path}/*.png', f'{tmp_path}/sub/*', f'{tmp_path}/list.txt'])
  got = result['images'] | beam.Map(lambda e: (e.ref.id, e.ref.source.rsplit('/', 1)[-1], e.data))
  assert_that(got, equal_to([('a', 'a.jpg', b'a.jpg'), ('b', 'b.jpg', b'b.jpg'), ('c', 'c.png', b'c.png'),
                             ('d', 'd.jpg', b'd.jpg'), ('more/e', 'e.webp', b'e.webp')]))
  assert_that(result[elements.ERRORS_TAG], equal_to([]), label='no errors')
  p.run().wait_until_finish()


def test_listed_file_that_is_missing_is_a_read_error(tmp_path):
  (tmp_path / 'list.txt').write_text('gone.jpg\n')
  p, result = _read([f'{tmp_path}/list.txt'])
  assert_that(result['images'], equal_to([]))
  assert_that(result[elements.ERRORS_TAG] | beam.Map(lambda e: (e.id, e.stage, e.source.endswith('gone.jpg'))),
              equal_to([('gone', 'read', True)]), label='errors')
  p.run().wait_until_finish()
