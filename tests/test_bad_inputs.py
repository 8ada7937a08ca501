"""Broken inputs cost only themselves: every input becomes a row or an error row that says which stage failed,
why and where; the good images among them still get the golden predictions. On image files, TFRecord
shards and a WebDataset shard, through the whole job on the local runner."""
import json
import os
import pathlib
import subprocess
import sys
from collections import Counter

from tests import badinputs, datagen

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'classify', '--labels_file', str(datagen.LABELS)]
GOLDEN_TOP1_PHOTOS = ('bird', 'cat', 'hot_dog', 'missvickie_potato_chips')


def _check_golden(rows: dict, prefix: str = '') -> None:
  golden = datagen.golden()
  for name in GOLDEN_TOP1_PHOTOS:
    expected = next(v for k, v in golden.items() if k.startswith(name + '.'))['pil_bilinear'][0]
    assert rows[prefix + name]['top_classes'][0] == expected['index'], name


def _check_accounting(result, expected: dict, located=()) -> tuple:
  """Each expected id is a row or an error row as its case says; located errors (no id of their own) too."""
  rows = result.predictions.to_pylist()
  errors = result.errors.to_pylist()
  summary = result.summary
  assert summary['accounted'] and summary['records_read'] == len(rows) + len(errors), summary
  assert summary['rows_written'] == len(rows) and summary['errors'] == len(errors)
  assert summary['errors_by_stage'] == dict(Counter(e['stage'] for e in errors))
  row_ids = Counter(r['id'] for r in rows)
  by_id = {e['id']: e for e in errors if e['id'] != e['source']}
  for key, case in expected.items():
    if case.expect == badinputs.ROW:
      assert key in row_ids and key not in by_id, (key, by_id.get(key))
    elif case.expect == badinputs.ANY:
      assert (key in row_ids) != (key in by_id), key
    else:
      assert key not in row_ids, key
      error = by_id[key]
      assert error['stage'] == case.expect and case.words in error['message'], error
      assert error['source'] and error['error_type'], error
  unlisted = set(row_ids) | set(by_id)
  assert unlisted <= set(expected), unlisted - set(expected)
  located_errors = [e for e in errors if e['id'] == e['source']]
  assert len(located_errors) == len(located), located_errors
  for file_name, words in located:
    assert any(file_name in e['source'] and '#offset=' in e['source'] and words in e['message']
               for e in located_errors), (file_name, words, located_errors)
  return {r['id']: r for r in rows}, by_id


def test_image_files_corpus(tmp_path, run_job):
  expected = badinputs.write_image_files(tmp_path / 'in')
  assert sum(c.expect not in (badinputs.ROW, badinputs.ANY) for c in expected.values()) >= 10
  result = run_job(tmp_path / 'out', ['--input', f'{tmp_path}/in/*'] + JOB)
  rows, errors = _check_accounting(result, expected)
  assert result.summary['records_read'] == len(expected)
  _check_golden(rows)
  assert (rows['exif_rotated']['width'], rows['exif_rotated']['height']) == (32, 48)  # as displayed
  assert (rows['oversized_exif']['width'], rows['oversized_exif']['height']) == (80, 120)
  assert (rows['one_pixel']['width'], rows['one_pixel']['height']) == (1, 1)
  assert errors['bomb_30000x30000']['source'].endswith('bomb_30000x30000.png')
  assert errors['zero_bytes']['error_type'] == 'DecodeError'


def test_tfrecord_corpus(tmp_path, run_job):
  expected, located = badinputs.write_tfrecords(tmp_path / 'in')
  result = run_job(tmp_path / 'out', ['--input', f'{tmp_path}/in/*.tfrecord'] + JOB)
  rows, errors = _check_accounting(result, dict(expected, same_id=badinputs.Case(b'', badinputs.ROW)), located)
  _check_golden(rows)
  _check_golden(rows, 'damaged_shard_')  # records after the damage are read
  # Two records that share an id both get a row, each with its own source, and the summary says so.
  same = [r for r in result.predictions.to_pylist() if r['id'] == 'same_id']
  assert len(same) == 2 and len({r['source'] for r in same}) == 2
  assert result.summary['duplicate_ids'] == 1
  assert errors['no_image_feature']['source'].split('#offset=')[0].endswith('.tfrecord')


def test_tar_corpus_never_writes_or_follows_member_names(tmp_path, run_job):
  work = tmp_path / 'deep' / 'er'
  shard = badinputs.write_tar(work / 'in')
  before = set(tmp_path.rglob('*'))
  result = run_job(work / 'out', ['--input', str(shard)] + JOB)
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  errors = {e['id']: e for e in result.errors.to_pylist()}
  assert set(rows) == {'good', '../../escaped'} and set(errors) == {'linked', 'caption_only'}
  assert result.summary['accounted'] and result.summary['records_read'] == 4
  assert rows['../../escaped']['source'] == f'{shard}#member=../../escaped.jpg'
  assert 'is a link' in errors['linked']['message'] and 'not followed' in errors['linked']['message']
  assert errors['caption_only']['stage'] == 'read' and 'no image member' in errors['caption_only']['message']
  created = set(tmp_path.rglob('*')) - before
  assert all(work / 'out' in path.parents or path == work / 'out' for path in created), created


def _peak_rss_kib(code: str) -> int:
  script = f'import resource, sys\n{code}\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)'
  proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True,
                        cwd=pathlib.Path(__file__).resolve().parents[1], env=dict(os.environ))
  return int(proc.stdout.split()[-1])


def test_decompression_bomb_is_refused_with_bounded_memory():
  setup = 'from tests import badinputs\nfrom transforms import decode\nbomb = badinputs.png_bomb()\n'
  baseline = _peak_rss_kib(setup)
  refused = _peak_rss_kib(setup + 'try:\n  decode.open_image(bomb)\nexcept decode.DecodeError as e:\n'
                          '  assert "too large" in str(e), e\nelse:\n  sys.exit("not refused")\n')
  assert refused - baseline < 20 * 1024  # KiB; decoding it would take 30000 * 30000 * 3 bytes = 2.7 GB


def test_names_that_are_not_utf8_become_rows_with_escaped_ids(tmp_path, run_job):
  """A file and a tar member named caf\\xe9.jpg (Latin-1, as old NAS exports and zip files have them)."""
  import io  # pylint: disable=import-outside-toplevel
  import tarfile  # pylint: disable=import-outside-toplevel
  import urllib.parse  # pylint: disable=import-outside-toplevel
  photo = next(p for p in datagen.photo_paths() if p.name.startswith('cat.')).read_bytes()
  folder = tmp_path / 'photos'
  folder.mkdir()
  (folder / 'ok.jpg').write_bytes(photo)
  with open(os.path.join(os.fsencode(folder), b'caf\xe9.jpg'), 'wb') as f:
    f.write(photo)
  shard = tmp_path / 'shard.tar'
  with tarfile.open(shard, 'w', format=tarfile.GNU_FORMAT, errors='surrogateescape') as tar:
    for name in ('ok.jpg', os.fsdecode(b'caf\xe9.jpg')):
      info = tarfile.TarInfo(name)
      info.size = len(photo)
      tar.addfile(info, io.BytesIO(photo))
  for source, where in ((str(folder), f'{folder}/'), (str(shard), f'{shard}#member=')):
    result = run_job(tmp_path / f'out_{pathlib.Path(source).stem}', ['--input', source] + JOB)
    assert result.summary['accounted'] and result.summary['errors'] == 0, result.summary
    rows = {r['id']: r for r in result.predictions.to_pylist()}
    assert sorted(rows) == ['caf%E9', 'ok'] and rows['caf%E9']['top_classes'] == rows['ok']['top_classes']
    assert rows['caf%E9']['source'] == f'{where}caf%E9.jpg'
    assert urllib.parse.unquote_to_bytes(rows['caf%E9']['source']).endswith(b'caf\xe9.jpg')  # its bytes back


def test_a_tar_with_a_damaged_member_header_is_not_accounted_and_says_where(tmp_path, run_job):
  """One byte flipped in the 3rd of 7 samples' headers: Python's tarfile ends such an archive quietly."""
  from transforms.read.formats import webdataset  # pylint: disable=import-outside-toplevel
  photos = [p.read_bytes() for p in datagen.photo_paths()][:7]
  shard = tmp_path / 'shard.tar'
  with open(shard, 'wb') as f:
    writer = webdataset.ShardWriter(f)
    for i, photo in enumerate(photos * (7 // len(photos) + 1)):
      if i < 7:
        writer.add(f'{i:05d}', {'jpg': photo, 'txt': b'a caption'})
    writer.close()
  data = bytearray(shard.read_bytes())
  data[data.find(b'00002.jpg') + 100] ^= 0xFF  # its header's mode field: the checksum no longer holds
  shard.write_bytes(bytes(data))
  result = run_job(tmp_path / 'out', ['--input', str(shard)] + JOB)
  summary = result.summary
  assert [r['id'] for r in result.predictions.to_pylist()] == ['00000', '00001']
  (error,) = result.errors.to_pylist()
  assert error['source'] == f'{shard}#member=00001.txt' and 'member header at byte' in error['message']
  assert summary['records_read'] == 3 and summary['stopped'] == [f'{shard}#member=00001.txt']
  assert summary['accounted'] is False  # how many samples followed is unknown


def test_files_an_input_leaves_out_are_counted_and_a_glob_skips_img2datasets_sidecars(tmp_path, run_job):
  """img2dataset writes 00000.tar beside 00000.parquet and 00000_stats.json; a folder of photos holds notes."""
  from transforms.read.formats import webdataset  # pylint: disable=import-outside-toplevel
  photos = [p.read_bytes() for p in datagen.photo_paths()]
  shards = tmp_path / 'shards'
  shards.mkdir()
  with open(shards / '00000.tar', 'wb') as f:
    writer = webdataset.ShardWriter(f)
    for i, photo in enumerate(photos):
      writer.add(f'{i:09d}', {'jpg': photo, 'txt': b'a caption'})
    writer.close()
  (shards / '00000.parquet').write_bytes(b'PAR1 not a tar')
  (shards / '00000_stats.json').write_text('{"count": 6}')
  result = run_job(tmp_path / 'out_tar', ['--input', f'{shards}/*'] + JOB)
  summary = result.summary
  assert summary['accounted'] and summary['rows_written'] == len(photos) and summary['errors'] == 0, summary
  assert summary['skipped_files'] == {'.json': 1, '.parquet': 1}
  assert summary['skipped_examples'] == [str(shards / '00000.parquet'), str(shards / '00000_stats.json')]
  named = run_job(tmp_path / 'out_named', ['--input', f'{shards}/*.tar,{shards}/*.parquet', '--input_format', 'tar']
                  + JOB)
  assert named.summary['errors'] == 1 and 'skipped_files' not in named.summary  # named: read, an error row
  folder = tmp_path / 'photos'
  folder.mkdir()
  for path in datagen.photo_paths():
    (folder / path.name).write_bytes(path.read_bytes())
  (folder / 'README.md').write_text('photos')
  (folder / 'labels.csv').write_text('cat,1')
  result = run_job(tmp_path / 'out_folder', ['--input', str(folder)] + JOB)
  assert result.summary['accounted'] and result.summary['rows_written'] == len(photos)
  assert result.summary['skipped_files'] == {'.csv': 1, '.md': 1}


def test_tar_members_no_row_holds_are_counted(tmp_path, run_job):
  """A sample with a second image (cat.jpg beside cat.png), a caption no column asks for, a file without an
  extension: none is a row, each is counted in `unused_members`; with --passthrough_keys txt, the caption is used."""
  import io  # pylint: disable=import-outside-toplevel
  import tarfile  # pylint: disable=import-outside-toplevel
  photo = next(p for p in datagen.photo_paths() if p.name.startswith('cat.')).read_bytes()
  shard = tmp_path / 'shard.tar'
  with tarfile.open(shard, 'w') as tar:
    for name, data in (('README', b'notes'), ('cat.jpg', photo), ('cat.png', photo), ('cat.txt', b'a cat'),
                       ('dog.jpg', photo), ('dog.txt', b'a dog')):
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  result = run_job(tmp_path / 'out', ['--input', str(shard)] + JOB)
  assert result.summary['accounted'] and result.summary['rows_written'] == 2, result.summary
  assert result.summary['unused_members'] == {'(none)': 1, 'png': 1, 'txt': 2}
  result = run_job(tmp_path / 'out_txt', ['--input', str(shard), '--passthrough_keys', 'txt'] + JOB)
  assert result.summary['unused_members'] == {'(none)': 1, 'png': 1}


def test_a_passthrough_value_of_another_type_is_null_not_an_error(tmp_path, run_job):
  photo = next(p for p in datagen.photo_paths() if p.name.startswith('cat.')).read_bytes()
  records = [datagen.example(image__encoded=[photo], label=[i]) for i in range(3)]
  records.append(datagen.example(image__encoded=[photo], label=[b'not a number']))
  shard = datagen.write_tfrecord(tmp_path / 'mixed.tfrecord', records)
  result = run_job(tmp_path / 'out', ['--input', str(shard), '--passthrough_keys', 'label:int64'] + JOB)
  assert result.summary['accounted'] and result.summary['errors'] == 0, result.summary
  assert sorted(r['label'] for r in result.predictions.to_pylist() if r['label'] is not None) == [0, 1, 2]
  assert result.summary['passthrough_nulls'] == {'label': 1}


def test_jfif_jpe_and_avif_photos_are_images(tmp_path, run_job):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  cat = next(p for p in datagen.photo_paths() if p.name.startswith('cat.'))
  folder = tmp_path / 'photos'
  folder.mkdir()
  for name in ('cat.jpg', 'cat_jfif.jfif', 'cat_jpe.jpe'):
    (folder / name).write_bytes(cat.read_bytes())
  Image.open(cat).convert('RGB').save(folder / 'cat_avif.avif', 'AVIF', quality=90)
  result = run_job(tmp_path / 'out', ['--input', str(folder)] + JOB)
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  assert sorted(rows) == ['cat', 'cat_avif', 'cat_jfif', 'cat_jpe'] and result.summary['accounted'], result.summary
  assert rows['cat_jfif']['top_classes'] == rows['cat_jpe']['top_classes'] == rows['cat']['top_classes']
  assert rows['cat_avif']['top_classes'][0] == rows['cat']['top_classes'][0]  # the same photo, re-encoded


def _tfds_shard(path: pathlib.Path, image_feature: str = 'image') -> list:
  """TFRecords as tensorflow_datasets writes an image dataset: `image`, `label`, `file_name`."""
  from transforms.read.formats import tf_example, tfrecord  # pylint: disable=import-outside-toplevel
  names = []
  with open(path, 'wb') as f:
    for i, photo in enumerate(datagen.photo_paths()):
      example = tf_example._example_class()()  # pylint: disable=protected-access
      feature = example.features.feature
      feature[image_feature].bytes_list.value.append(photo.read_bytes())
      feature['label'].int64_list.value.append(i)
      feature['file_name'].bytes_list.value.append(photo.name.encode('utf-8'))
      f.write(tfrecord.encode_record(example.SerializeToString()))
      names.append(photo.name)
  return names


def test_tfds_records_are_read_with_the_image_and_id_features_found_at_launch(tmp_path, run_job):
  shard = tmp_path / 'train.tfrecord-00000-of-00001'
  names = _tfds_shard(shard)
  result = run_job(tmp_path / 'out', ['--input', str(shard), '--input_format', 'tfrecord'] + JOB)
  assert result.summary['accounted'] and result.summary['errors'] == 0, result.summary
  assert sorted(r['id'] for r in result.predictions.to_pylist()) == sorted(names)  # TFDS' file_name
  _check_golden({r['id'].rsplit('.', 1)[0]: r for r in result.predictions.to_pylist()})
  job = json.loads((tmp_path / 'out' / 'job.json').read_text())
  assert (job['image_key'], job['id_key']) == ('image', 'file_name')


def test_records_without_an_image_feature_are_refused_at_launch_naming_the_features(tmp_path):
  shard = tmp_path / 'r.tfrecord'
  _tfds_shard(shard)
  proc = subprocess.run([sys.executable, '-m', 'pipeline', '--input', str(shard), '--output', str(tmp_path / 'o'),
                         '--image_key', 'picture'] + JOB, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "no image feature 'picture'" in proc.stderr and 'file_name, image, label' in proc.stderr
  assert '--image_key' in proc.stderr and not (tmp_path / 'o').exists()  # before any work
