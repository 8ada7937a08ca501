"""Flaky storage for real: the job reads gs:// shards through a fault-injecting proxy (tests/fault_proxy.py) in
front of the GCS emulator. Cut connections, 503s and delays leave the output equal to a clean run's, row for
row; storage that keeps failing past some byte of one shard makes the summary say `accounted: false` and name
that shard's unread range."""
import pytest

from pipeline import pack
from tests import datagen, gcs
from tests.fault_proxy import Faults, FaultProxy
from transforms.read import retry

# In this process (the faults are made here), the quantized TFLite model for speed.
JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'classify', '--top_k', '3', '--no_auth',
       '--direct_running_mode=in_memory', '--direct_num_workers=1']


def _rows(result):
  rows = sorted((r['id'], r['source'], r['top_classes'], [round(s, 5) for s in r['top_scores']])
                for r in result.predictions.to_pylist())
  errors = sorted((r['id'], r['source'], r['stage'], r['error_type']) for r in result.errors.to_pylist())
  return rows, errors


@pytest.fixture(name='short_retries')
def short_retries_fixture(monkeypatch):
  """Storage client retries for 3 s instead of 120 s, and our own backoff in tenths of a second."""
  from apache_beam.io.gcp import gcsio_retry  # pylint: disable=import-outside-toplevel
  quick = gcsio_retry.DEFAULT_RETRY_WITH_THROTTLING_COUNTER
  quick = quick.with_timeout(3) if hasattr(quick, 'with_timeout') else quick.with_deadline(3)
  monkeypatch.setattr(gcsio_retry, 'DEFAULT_RETRY_WITH_THROTTLING_COUNTER', quick.with_delay(0.1, 0.5, 2))
  monkeypatch.setattr(retry, 'BACKOFF_SECONDS', 0.1)


@pytest.mark.full
@pytest.mark.usefixtures('gcs_emulator', 'short_retries')
def test_flaky_reads_give_the_clean_output(tmp_path, run_job, monkeypatch, gcs_emulator):
  bucket = gcs.new_bucket()
  for fmt, gz in (('tfrecord', False), ('tar', False)):
    pack.pack([str(datagen.PHOTOS)], str(tmp_path / 'shards' / fmt / 'photos'), fmt, images_per_shard=3, gzip=gz)
  shards = gcs.upload(bucket, tmp_path / 'shards', 'shards')
  inputs = ['--input', f'{shards}/tfrecord/*,{shards}/tar/*']
  clean = run_job(tmp_path / 'clean', inputs + JOB)
  assert clean.summary['accounted'] and clean.summary['rows_written'] == 12
  with FaultProxy(gcs_emulator, Faults(fraction=0.4, seed=3, delay_seconds=0.3)) as proxy:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', proxy.url)
    flaky = run_job(tmp_path / 'flaky', inputs + JOB)
  assert proxy.stats.faulted > 0, proxy.stats
  assert _rows(flaky) == _rows(clean)
  assert flaky.summary['accounted'] and 'unread' not in flaky.summary


@pytest.mark.full
@pytest.mark.usefixtures('gcs_emulator', 'short_retries')
def test_storage_failing_past_a_byte_is_reported_unread(tmp_path, run_job, monkeypatch, gcs_emulator):
  datagen.make_jpegs(tmp_path / 'images', 60)
  packed = pack.pack([str(tmp_path / 'images')], str(tmp_path / 'shards' / 'big'), 'tfrecord',
                     images_per_shard=1000)
  (local,) = [p for p in packed.shards]
  size = (tmp_path / 'shards' / local.split('/shards/')[1]).stat().st_size
  assert size > 2 << 20, size  # three ranges of 1 MiB or more
  bucket = gcs.new_bucket()
  uri = gcs.upload(bucket, tmp_path / 'shards', 'shards')
  name = 'shards/' + local.split('/shards/')[1]
  with FaultProxy(gcs_emulator, Faults(fail_object=name, fail_from_byte=(2 << 20) - 1)) as proxy:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', proxy.url)
    result = run_job(tmp_path / 'out', ['--input', f'{uri}/*'] + JOB)
  summary = result.summary
  assert proxy.stats.faulted > 0, proxy.stats
  assert summary['accounted'] is False
  assert summary['unread'] == [f'gs://{bucket}/{name}#bytes={2 << 20}-{size}'], summary
  assert 0 < summary['records_read'] < 60 and summary['records_read'] == summary['rows_written'] + summary['errors']
