"""The analyze stage: statistics, and the whole job with --analyze_embeddings on 500 real embeddings.

The job runs once for the module, on the default local runner (multi-process
DirectRunner), with the real Hub feature model by its handle; the checks
compare it with numpy's PCA and with the exported transform applied in a
fresh process, as a training job would.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests import checks, conftest, datagen
from transforms.analyze import embeddings as analysis
from transforms.analyze import pca, statistics

IMAGES = 500
PCA_DIMS = 16


def test_statistics_add_up_over_batches():
  rng = np.random.default_rng(2)
  x = rng.normal(3, 2, size=(300, 6)).astype(np.float32)
  p = rng.normal(size=(300, 2)).astype(np.float32)
  total = sum(statistics.moments(x[i:i + 70], p[i:i + 70]) for i in range(0, 300, 70))
  stats = statistics.statistics(total, 6, 2)
  assert stats['count'] == 300
  assert stats['mean_norm'] == pytest.approx(np.linalg.norm(x.astype(np.float64), axis=1).mean())
  assert stats['total_variance'] == pytest.approx(x.astype(np.float64).var(axis=0).sum())
  assert np.allclose(stats['explained_variance'], p.astype(np.float64).var(axis=0))
  assert np.allclose(stats['explained_variance_ratio'], p.var(axis=0) / x.var(axis=0).sum(), rtol=1e-5)


def test_statistics_of_nothing_are_empty():
  assert statistics.statistics(0, 6, 2) == {'count': 0, 'mean_norm': None, 'total_variance': None,
                                         'explained_variance': None, 'explained_variance_ratio': None}


@pytest.fixture(scope='module', name='job')
def job_fixture(tmp_path_factory, hub_cache):
  del hub_cache  # the job resolves the model's handle through it
  images = tmp_path_factory.mktemp('images')
  datagen.make_jpegs(images, IMAGES, seed=8, size=(96, 72))
  return conftest.run_job(tmp_path_factory.mktemp('job') / 'out', [
      '--input', f'{images}/*', '--model', datagen.HUB_FEATURES, '--task', 'embed', '--analyze_embeddings',
      '--pca_dims', str(PCA_DIMS), '--whiten'
  ])


@pytest.mark.full
def test_pca_matches_numpy(job):
  assert job.predictions.num_rows == IMAGES
  checks.assert_pca_matches_numpy(job.output, job.predictions, job.summary['embedding_analysis'], PCA_DIMS)


@pytest.mark.full
def test_summary_and_files(job):
  embeddings = checks.column(job.predictions, 'embedding').astype(np.float64)
  assert job.summary['rows_written'] == job.predictions.num_rows == IMAGES and job.errors.num_rows == 0
  stats = job.summary['embedding_analysis']
  assert stats['count'] == IMAGES and stats['pca_dims'] == PCA_DIMS and stats['whitened'] is True
  assert stats['mean_norm'] == pytest.approx(np.linalg.norm(embeddings, axis=1).mean(), rel=1e-6)
  assert stats['total_variance'] == pytest.approx(embeddings.var(axis=0).sum(), rel=1e-6)
  assert stats['explained_variance'] == sorted(stats['explained_variance'], reverse=True)
  assert json.loads((job.output / 'summary.json').read_text()) == job.summary
  transform = job.output / analysis.TRANSFORM_DIR
  assert stats['transform_dir'] == str(transform)
  for path in ('transform_fn/saved_model.pb', 'transformed_metadata/schema.pbtxt', 'metadata/schema.pbtxt',
               analysis.STATS_FILE):
    assert (transform / path).is_file(), path
  assert not list(job.output.glob('tft_tmp-*'))  # scratch space removed
  assert job.predictions.column_names[-3:] == ['embedding', pca.PCA, pca.WHITENED]


# What a training job does (docs/analysis.md, "Training on the output"): load the transform, map it over a tf.data pipeline.
_TRAINING_JOB = textwrap.dedent('''
    import sys
    import numpy as np, pyarrow.parquet as pq, tensorflow as tf, tensorflow_transform as tft
    out, dest = sys.argv[1:]
    tft_output = tft.TFTransformOutput(out + '/transform')
    table = pq.read_table(out + '/predictions', columns=['id', 'embedding'])
    embeddings = np.stack(table['embedding'].to_numpy(zero_copy_only=False))
    layer = tft_output.transform_features_layer()
    dataset = tf.data.Dataset.from_tensor_slices({'embedding': embeddings}).batch(64).map(layer)
    batches = list(dataset.as_numpy_iterator())
    np.savez(dest, id=np.array(table['id'].to_pylist()), raw=sorted(tft_output.raw_feature_spec()),
             **{name: np.concatenate([b[name] for b in batches]) for name in batches[0]})
''')


@pytest.mark.full
def test_exported_transform_reproduces_the_columns_in_a_fresh_process(job, tmp_path):
  dest = tmp_path / 'reproduced.npz'
  proc = subprocess.run([sys.executable, '-c', _TRAINING_JOB, str(job.output), str(dest)],
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  reproduced = np.load(dest)
  assert reproduced['raw'].tolist() == [pca.EMBEDDING]
  rows = {row_id: i for i, row_id in enumerate(job.predictions['id'].to_pylist())}
  order = [rows[row_id] for row_id in reproduced['id']]
  for name in (pca.PCA, pca.WHITENED):
    assert np.allclose(reproduced[name], checks.column(job.predictions, name)[order], rtol=1e-5, atol=1e-5), name
