"""The job on a real standalone Flink cluster equals the local runner's, row for row.

templates/flink/flink.sh fetches Flink and Beam's job server (cached outside the project) and starts a
JobManager, a TaskManager and the Python SDK worker pool, exactly as templates/flink/README.md tells users;
the job is then launched with the flags that script prints, as a user would.
"""
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests import checks, conftest, datagen

pytestmark = pytest.mark.full

GENERATED = 300


@pytest.fixture(scope='module', name='images')
def images_fixture(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp('flink_images')
  for path in datagen.photo_paths():
    shutil.copy(path, directory / path.name)
  datagen.make_jpegs(directory / 'generated', GENERATED, seed=7)
  (directory / 'broken.jpg').write_bytes((datagen.PHOTOS / 'hot_dog.jpg').read_bytes()[:5000])
  return directory


def _sorted_rows(table):
  return sorted(table.to_pylist(), key=lambda row: row['id'])


def test_flink_output_equals_direct_runner_output(flink_flags, images, tmp_path):
  job = ['--input', f'{images}/*.*,{images}/generated/*.jpg', '--model', datagen.HUB_CLASSIFIER,
         '--task', 'both', '--labels_file', str(datagen.LABELS), '--top_k', '5']
  direct = conftest.run_job(tmp_path / 'direct', job)

  flink_out = tmp_path / 'flink'
  proc = subprocess.run([sys.executable, '-m', 'pipeline', '--output', str(flink_out)] + job + flink_flags,
                        capture_output=True, text=True, timeout=1200, check=False)
  assert proc.returncode == 0, proc.stderr[-6000:]
  assert 'Submitting job' in proc.stderr  # it really went to the cluster, through the job server
  assert 'Final accumulator values' not in proc.stderr  # the job server's metric dump stays out of the log
  predictions = conftest.read_dataset(flink_out / 'predictions')
  errors = conftest.read_dataset(flink_out / 'errors')

  inputs = len(datagen.photo_paths()) + GENERATED + 1
  assert direct.predictions.num_rows == inputs - 1 and direct.errors.num_rows == 1
  assert predictions.schema.equals(direct.predictions.schema)
  expected, actual = _sorted_rows(direct.predictions), _sorted_rows(predictions)
  assert [r['id'] for r in actual] == [r['id'] for r in expected]
  for want, got in zip(expected, actual):
    for column in ('source', 'width', 'height', 'model', 'top_classes', 'top_labels'):
      assert got[column] == want[column], (want['id'], column)
    np.testing.assert_allclose(got['top_scores'], want['top_scores'], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got['embedding'], want['embedding'], rtol=1e-4, atol=1e-5)
  assert _sorted_rows(errors) == _sorted_rows(direct.errors)

  # summary.json on Flink: the job's own tally, written by its commit step, must add up the same.
  summary = json.loads((flink_out / 'summary.json').read_text())
  assert summary == json.loads(proc.stdout)
  for key in ('records_read', 'rows_written', 'errors', 'errors_by_stage'):
    assert summary[key] == direct.summary[key], key
  assert summary['records_read'] == inputs and summary['rows_written'] == predictions.num_rows
  assert summary['errors_by_stage'] == {'decode': 1}


def test_flink_embedding_analysis_matches_numpy(flink_flags, images, tmp_path):
  """--analyze_embeddings on the cluster: the full-pass tf.Transform analysis, its export and the columns."""
  out = tmp_path / 'flink_pca'
  proc = subprocess.run([
      sys.executable, '-m', 'pipeline', '--output', str(out), '--input', f'{images}/*.*,{images}/generated/*.jpg',
      '--model', datagen.HUB_FEATURES, '--task', 'embed', '--analyze_embeddings', '--pca_dims', '16', '--whiten'
  ] + flink_flags, capture_output=True, text=True, timeout=1200, check=False)
  assert proc.returncode == 0, proc.stderr[-6000:]
  assert 'Submitting job' in proc.stderr
  predictions = conftest.read_dataset(out / 'predictions')
  stats = json.loads(proc.stdout)['embedding_analysis']
  assert stats['count'] == predictions.num_rows == len(datagen.photo_paths()) + GENERATED
  checks.assert_pca_matches_numpy(out, predictions, stats, 16)
  assert not list(out.glob('tft_tmp-*'))  # scratch space removed
