"""Inputs -> files and ids: glob bases, list files, the per-worker read counter, each file read once."""
from tests import datagen
from transforms.read import match


def test_pattern_base_and_ids():
  assert match.pattern_base('/data/imgs/*.jpg') == '/data/imgs/'
  assert match.pattern_base('/data/**/x?.png') == '/data/'
  assert match.pattern_base('gs://bucket/a/b/*.jpg') == 'gs://bucket/a/b/'
  assert match.pattern_base('/data/imgs/cat.jpg') == '/data/imgs'
  assert match.file_id('/data/imgs/sub/cat.jpg', '/data/imgs/') == 'sub/cat'
  assert match.file_id('gs://bucket/a/dog.png', 'gs://bucket/a/') == 'dog'
  assert match.file_id('/data/imgs/cat.jpg', '/data/imgs') == 'cat'


def test_glob_expands_recursively_with_ids_under_its_base(tmp_path):
  (tmp_path / 'sub').mkdir()
  for name in ('a.jpg', 'sub/b.png', 'sub/c.v2.jpg'):
    (tmp_path / name).write_bytes(b'x' * len(name))
  found = sorted(match.expand(f'{tmp_path}/**'))
  assert [(f.id, f.size) for f in found] == [('a', 5), ('sub/b', 9), ('sub/c.v2', 12)]
  assert [f.id for f in match.expand(f'{tmp_path}/*')] == ['a']


def test_list_file_names_files_relative_to_itself_or_absolute(tmp_path):
  (tmp_path / 'imgs').mkdir()
  (tmp_path / 'imgs' / 'cat.jpg').write_bytes(b'cat')
  elsewhere = tmp_path / 'other' / 'dog.png'
  elsewhere.parent.mkdir()
  elsewhere.write_bytes(b'dog')
  listing = tmp_path / 'list.txt'
  listing.write_text(f'# a comment\nimgs/cat.jpg\n\n  {elsewhere}  \n')
  assert match.is_list_file(str(listing)) and not match.is_list_file(f'{tmp_path}/*.txt')
  found = list(match.expand(str(listing)))
  assert [(f.path, f.id) for f in found] == [(str(tmp_path / 'imgs' / 'cat.jpg'), 'imgs/cat'),
                                             (str(elsewhere), str(elsewhere)[:-len('.png')])]
  assert match.first_file(str(listing)) == str(tmp_path / 'imgs' / 'cat.jpg')
  assert match.first_file(str(tmp_path / 'missing.txt')) is None
  assert match.first_file(f'{tmp_path}/nothing/*') is None


def test_a_file_named_by_several_inputs_is_read_once(tmp_path, run_job):
  result = run_job(tmp_path / 'out', ['--input', f'{datagen.PHOTOS}/*,{datagen.photo_named("cat")},'
                                      f'{datagen.PHOTOS}/c*', '--model', str(datagen.TFLITE_QUANT),
                                      '--task', 'classify'])
  ids = [r['id'] for r in result.predictions.to_pylist()]
  assert sorted(ids) == sorted(p.stem for p in datagen.photo_paths())
  assert result.summary['records_read'] == len(ids) and result.summary['accounted']


def test_the_streamed_listing_gives_what_beams_match_gives(tmp_path):
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  from transforms.read import listing  # pylint: disable=import-outside-toplevel
  for name in ('a.jpg', 'b.png', 'ab.jpg', 'sub/c.jpg', 'sub/deep/d.jpg', 'sub/deep/e.txt', 'x[1].jpg'):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(b'x' * len(name))
  for glob in ('**', '*', '*.jpg', 'a?.jpg', 'sub/**', 'sub/*', '**/*.jpg', 'a.jpg', 'missing.jpg', 'sub/', 'su*'):
    pattern = f'{tmp_path}/{glob}'
    streamed = sorted(listing.files(pattern))
    matched = sorted((m.path, m.size_in_bytes) for m in FileSystems.match([pattern])[0].metadata_list)
    assert [(f.path, f.size_in_bytes) for f in streamed] == matched, glob
  assert len(list(listing.files(f'{tmp_path}/**'))) == 7
