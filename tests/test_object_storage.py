"""Object storage for real: the job reads image files, TFRecord shards and tar shards from fake-gcs-server
behind a proxy that holds each request 25 ms (benchmarks/latency_proxy.py), with reads in flight
(transforms/read/window.py). The output equals a local run's, row for row, with `accounted: true`; each image
file costs one GET, and the proxy saw the window's reads overlap (more connections than one per worker)."""
import re

import pytest

from benchmarks.latency_proxy import LatencyProxy
from pipeline import pack
from tests import datagen, gcs

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'classify', '--top_k', '3', '--no_auth',
       '--direct_running_mode=multi_processing', '--direct_num_workers=2', '--reads_in_flight', '16',
       '--read_bytes_in_flight', str(4 << 20)]
IMAGES = 80


def _rows(result):
  rows = sorted((r['id'], r['top_classes'], [round(s, 5) for s in r['top_scores']])
                for r in result.predictions.to_pylist())
  errors = sorted((r['id'], r['stage'], r['error_type']) for r in result.errors.to_pylist())
  return rows, errors


@pytest.fixture(scope='module', name='inputs')
def inputs_fixture(tmp_path_factory):
  """The same images as files (plus a broken one), TFRecord shards cut into several ranges, and tar shards."""
  root = tmp_path_factory.mktemp('object_storage')
  datagen.make_jpegs(root / 'files', IMAGES, size=(320, 240))
  (root / 'files' / 'broken.jpg').write_bytes(b'not an image')
  pack.pack([str(root / 'files')], str(root / 'tfrecord' / 'shard'), 'tfrecord', images_per_shard=IMAGES)
  pack.pack([str(root / 'files')], str(root / 'tar' / 'shard'), 'tar', images_per_shard=30)
  return root


@pytest.mark.full
@pytest.mark.parametrize('fmt, pattern', [('files', '*.jpg'), ('tfrecord', 'shard-*'), ('tar', 'shard-*')])
def test_gcs_with_latency_gives_the_local_output(inputs, fmt, pattern, tmp_path, run_job, monkeypatch):
  extra = ['--files_per_unit', '4'] if fmt == 'files' else []
  local = run_job(tmp_path / 'local', ['--input', str(inputs / fmt / pattern)] + JOB + extra)
  with gcs.fake_gcs_server() as server:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', server)
    bucket = gcs.new_bucket()
    uri = gcs.upload(bucket, inputs / fmt, fmt)
    with LatencyProxy(server, 25) as proxy:
      proxy.record_lines = True
      monkeypatch.setenv('STORAGE_EMULATOR_HOST', proxy.url)
      remote = run_job(tmp_path / 'remote', ['--input', f'{uri}/{pattern}'] + JOB + extra)
  assert local.summary['accounted'] and remote.summary['accounted']
  assert remote.summary['records_read'] == local.summary['records_read'] >= IMAGES
  assert _rows(remote) == _rows(local)
  assert len(remote.predictions) == IMAGES
  downloads = [line for line in proxy.request_lines if 'alt=media' in line]
  if fmt == 'files':
    by_object = {}
    for line in downloads:
      name = re.search(r'/o/([^?]+)', line).group(1)
      by_object[name] = by_object.get(name, 0) + 1
    # Each file read once by the workers, in one GET (the launcher reads the first file's head too).
    assert len(by_object) == IMAGES + 1 and sum(by_object.values()) <= IMAGES + 1 + 2, by_object
    metadata = [line for line in proxy.request_lines if re.search(r'/o/[^?]+(\?(?!.*alt=media)|$)', line)]
    assert len(metadata) <= 3, metadata  # no metadata reload per file
  assert proxy.connections > 2  # reads overlapped: more than one connection per worker process
