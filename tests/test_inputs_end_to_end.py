"""Every input kind through the whole job: the shared photos packed as TFRecord and as tar give the rows
the files give; a folder as --input, of image files or of shards; gs:// input and output through a real
GCS emulator; one large TFRecord file read by both workers."""
import json

import numpy as np
import pytest

from pipeline import pack, run
from tests import datagen, gcs
from tests.conftest import read_dataset
from transforms.read import match, plan
from transforms.read.formats import detect

JOB = ['--model', datagen.HUB_CLASSIFIER, '--task', 'both', '--labels_file', str(datagen.LABELS), '--top_k', '5']


def _rows(table):
  """Rows by id, without the source column (the one thing that differs between input kinds)."""
  rows = {r['id']: {k: v for k, v in r.items() if k != 'source'} for r in table.to_pylist()}
  assert len(rows) == table.num_rows, 'ids must be unique'
  return rows


def _assert_same_rows(got, want):
  """Equal rows; scores and embeddings to float tolerance, since batches may group images differently."""
  assert sorted(got) == sorted(want)
  for key, row in got.items():
    expected = want[key]
    for column in ('top_scores', 'embedding'):
      np.testing.assert_allclose(row.pop(column), expected[column], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{key} {column}')
    assert row == {k: v for k, v in expected.items() if k not in ('top_scores', 'embedding')}, key


@pytest.fixture(scope='module', name='files_run')
def files_run_fixture(tmp_path_factory):
  """The reference: the shared photos read as files."""
  from tests.conftest import run_job  # pylint: disable=import-outside-toplevel
  result = run_job(tmp_path_factory.mktemp('files') / 'out', ['--input', f'{datagen.PHOTOS}/*'] + JOB)
  assert result.errors.num_rows == 0 and result.predictions.num_rows == len(datagen.photo_paths())
  return result


@pytest.mark.parametrize('fmt, gzip, extension', [('tfrecord', False, '.tfrecord'), ('tar', True, '.tar.gz')])
@pytest.mark.full
def test_packed_photos_give_the_same_rows_as_the_files(tmp_path, run_job, files_run, fmt, gzip, extension):
  shards = pack.pack([str(datagen.PHOTOS)], str(tmp_path / 'shards' / 'photos'), fmt, images_per_shard=4,
                     gzip=gzip)
  assert shards.images == 6 and len(shards.shards) == 2 and all(s.endswith(extension) for s in shards.shards)
  result = run_job(tmp_path / 'out', ['--input', f'{tmp_path}/shards/*'] + JOB)
  assert result.errors.num_rows == 0
  _assert_same_rows(_rows(result.predictions), _rows(files_run.predictions))
  marker = '#offset=' if fmt == 'tfrecord' else '#member='
  assert all(marker in s and s.startswith(str(tmp_path)) for s in result.predictions.column('source').to_pylist())
  assert result.summary['records_read'] == 6 and result.summary['rows_written'] == 6


@pytest.fixture(name='photo_folder')
def photo_folder_fixture(tmp_path):
  """The shared photos in a folder, two of them in a subfolder, beside files that are no images."""
  return datagen.photo_folder(tmp_path, {'labels.json': '{"not": "an image"}', 'sub/notes.txt': 'not an image either'})


@pytest.mark.full
def test_a_folder_of_image_files(tmp_path, run_job, files_run, photo_folder):
  """Every image file under the folder, ids as a DIR/** glob gives them (sub/name); other files ignored."""
  result = run_job(tmp_path / 'out', ['--input', str(photo_folder)] + JOB)
  assert result.errors.num_rows == 0  # the .json and .txt files were not read as images
  paths = datagen.photo_paths()
  expected = {p.stem: photo_folder / p.name for p in paths[:4]}
  expected.update({f'sub/{p.stem}': photo_folder / 'sub' / p.name for p in paths[4:]})
  rows = _rows(result.predictions)
  assert sorted(rows) == sorted(expected)
  by_name = {key.split('/')[-1]: dict(row, id=key.split('/')[-1]) for key, row in rows.items()}
  _assert_same_rows(by_name, _rows(files_run.predictions))
  sources = dict(zip(result.predictions.column('id').to_pylist(), result.predictions.column('source').to_pylist()))
  assert sources == {key: str(path) for key, path in expected.items()}
  assert result.summary['records_read'] == 6 and result.summary['rows_written'] == 6
  # With a trailing slash the folder names the same files, with the same ids.
  assert plan.plan_inputs([f'{photo_folder}/']).inputs == ((f'{photo_folder}/', detect.IMAGES),)
  assert {(f.id, f.path) for f in match.expand(f'{photo_folder}/', detect.IMAGES)} == \
      {(key, str(path)) for key, path in expected.items()}


@pytest.mark.full
def test_a_folder_of_tfrecord_shards(tmp_path, run_job, files_run):
  """Every TFRecord shard under the folder (a manifest beside them ignored) gives the rows the files give."""
  shards = pack.pack([str(datagen.PHOTOS)], str(tmp_path / 'shards' / 'photos'), 'tfrecord', images_per_shard=4)
  assert len(shards.shards) == 2
  (tmp_path / 'shards' / 'manifest.json').write_text(json.dumps(shards.shards))
  result = run_job(tmp_path / 'out', ['--input', str(tmp_path / 'shards')] + JOB)
  assert result.errors.num_rows == 0
  _assert_same_rows(_rows(result.predictions), _rows(files_run.predictions))
  sources = result.predictions.column('source').to_pylist()
  assert {s.split('#offset=')[0] for s in sources} == set(shards.shards)
  assert result.summary['records_read'] == 6 and result.summary['rows_written'] == 6


@pytest.mark.parametrize('contents', [(), ('notes.txt', 'labels.json', 'sub/README.md')])
def test_a_folder_without_known_files_fails_fast(tmp_path, capsys, contents):
  folder = tmp_path / 'empty'
  folder.mkdir()
  for name in contents:
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text('no image')
  argv = ['--input', str(folder), '--output', str(tmp_path / 'out'), '--model', datagen.HUB_CLASSIFIER]
  assert run.main(argv) == 2
  err = capsys.readouterr().err
  assert f'--input {folder}: no image, TFRecord or tar files under this folder' in err
  assert not (tmp_path / 'out').exists()


@pytest.mark.usefixtures('gcs_emulator')
def test_gcs_round_trip_through_the_emulator(tmp_path, files_run):
  bucket = gcs.new_bucket()
  photos = gcs.upload(bucket, datagen.PHOTOS, 'photos')
  output = f'gs://{bucket}/runs/first'
  summary = run.run(['--input', f'{photos}/*', '--output', output, '--no_auth'] + JOB)
  written = gcs.list_uris(output + '/')
  assert f'{output}/summary.json' in written
  assert any(w.startswith(f'{output}/predictions/part-') for w in written)
  assert any(w.startswith(f'{output}/errors/part-') for w in written)
  local = gcs.download(output, tmp_path / 'downloaded')
  predictions = read_dataset(local / 'predictions')
  assert read_dataset(local / 'errors').num_rows == 0
  _assert_same_rows(_rows(predictions), _rows(files_run.predictions))
  assert sorted(predictions.column('source').to_pylist()) == [f'{photos}/{p.name}' for p in datagen.photo_paths()]
  assert json.loads((local / 'summary.json').read_text()) == summary
  assert summary['rows_written'] == 6


@pytest.mark.full
def test_one_large_tfrecord_file_is_read_by_both_workers(tmp_path, run_job):
  count = 2000
  datagen.make_jpegs(tmp_path / 'small', count, size=(64, 64))
  packed = pack.pack([str(tmp_path / 'small')], str(tmp_path / 'one' / 'images'), 'tfrecord',
                     images_per_shard=count)
  assert len(packed.shards) == 1
  job = ['--input', packed.shards[0], '--model', datagen.HUB_FEATURES, '--task', 'embed',
         '--max_batch_size', '128']
  two_workers = ['--direct_num_workers', '2', '--direct_running_mode', 'multi_processing']
  result = run_job(tmp_path / 'out', job, two_workers)
  by_worker = result.summary['records_read_by_worker']
  assert len(by_worker) == 2 and sum(by_worker) == count, by_worker
  assert min(by_worker) >= count // 5, by_worker  # the file's byte ranges were shared, not one worker's job
  assert result.errors.num_rows == 0
  assert sorted(result.predictions.column('id').to_pylist()) == [f'img_{i:06d}' for i in range(count)]
