"""Every input kind through the whole job: the shared photos packed as TFRecord and as tar give the rows
the files give; gs:// input and output through a real GCS emulator; one large TFRecord file read by
both workers."""
import json

import numpy as np
import pytest

from pipeline import pack
from tests import datagen, gcs
from tests.conftest import read_dataset

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


@pytest.mark.usefixtures('gcs_emulator')
def test_gcs_round_trip_through_the_emulator(tmp_path, files_run):
  bucket = gcs.new_bucket()
  photos = gcs.upload(bucket, datagen.PHOTOS, 'photos')
  output = f'gs://{bucket}/runs/first'
  from pipeline import run  # pylint: disable=import-outside-toplevel
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
