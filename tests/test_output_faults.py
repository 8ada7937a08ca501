"""Whole jobs under the faults large jobs meet: scratch space on gs://, two launches on one output.

(The commit killed at each of its steps: test_commit.py; the lease itself: test_lease.py.)
"""
import json
import subprocess
import sys
import threading

import pyarrow.parquet as pq
import pytest

from pipeline import run
from tests import datagen

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'both', '--labels_file', str(datagen.LABELS)]


@pytest.mark.full
def test_tf_transform_scratch_is_deleted_by_the_commit_step(tmp_path):
  """The job's commit step deletes tf.Transform's scratch folder (the launcher does not: a Flex Template launch
  does not wait). (On gs:// the same commit step deletes it through Beam's filesystem, tested on the GCS emulator
  in test_commit.py; tf.Transform itself writes through TF's filesystem, whose gs:// client has no emulator
  endpoint, so the whole job cannot run against an emulator.)"""
  temp = tmp_path / 'temp'
  summary = run.run(['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--temp_location',
                     str(temp), '--model', datagen.HUB_FEATURES, '--task', 'embed', '--analyze_embeddings',
                     '--pca_dims', '3'])
  assert summary['accounted'] and summary['rows_written'] == 6
  assert not list(temp.glob('tft_tmp-*')) and not list((tmp_path / 'out').glob('tft_tmp-*'))
  assert (tmp_path / 'out' / 'transform' / 'transform_fn').is_dir()
  assert not (tmp_path / 'out' / '_lease.json').exists()


def _command(out, extra=()):
  extra = list(extra)
  photos = [] if '--input' in extra else ['--input', f'{datagen.PHOTOS}/*']
  return [sys.executable, '-m', 'pipeline', '--output', str(out)] + photos + JOB + extra


def _launch(out, *extra):
  return subprocess.Popen(_command(out, extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(out):
  return {r['id']: (r['source'], r['top_classes']) for r in pq.read_table(out / 'predictions').to_pylist()}


@pytest.mark.full
def test_two_launches_at_once_one_refused_naming_the_holder(tmp_path):
  clean = subprocess.run(_command(tmp_path / 'clean'), capture_output=True, text=True, timeout=600, check=False)
  assert clean.returncode == 0, clean.stderr[-2000:]
  out = tmp_path / 'out'
  procs = [_launch(out), _launch(out)]
  results = []
  threads = [threading.Thread(target=lambda p=p: results.append((p.communicate(timeout=600), p.returncode)))
             for p in procs]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  codes = sorted(code for _, code in results)
  assert codes == [0, 2], [err[-2000:] for (_, err), _ in results]
  refused = next(err for (_, err), code in results if code == 2)
  assert 'is in use by run ' in refused and ' on host ' in refused and 'last heartbeat' in refused, refused
  assert _rows(out) == _rows(tmp_path / 'clean')
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['accounted'] and summary['rows_written'] == 6
  assert not (out / '_lease.json').exists() and not (out / '_staging').exists()


@pytest.fixture(name='small_disk')
def small_disk_fixture(tmp_path):
  """A 2 MB tmpfs (root mounts it, as CI runs), unmounted after."""
  mount = tmp_path / 'disk'
  mount.mkdir()
  proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(mount)], capture_output=True,
                        text=True, check=False)
  assert proc.returncode == 0, f'cannot mount a tmpfs here: {proc.stderr.strip()}'
  yield mount
  subprocess.run(['umount', str(mount)], check=True)


@pytest.mark.full
def test_a_full_disk_fails_the_job_and_resume_finishes_it(tmp_path, small_disk):
  photos = tmp_path / 'photos'
  datagen.make_jpegs(photos, 1000, seed=5, size=(96, 72))
  command = ['--input', f'{photos}/*', '--files_per_unit', '20']
  clean = subprocess.run(_command(tmp_path / 'clean', command), capture_output=True, text=True, timeout=600,
                         check=False)
  assert clean.returncode == 0, clean.stderr[-2000:]
  filler = small_disk / 'filler'
  filler.write_bytes(bytes(1_700_000))  # about 300 KB left: the job's checkpoints and shards need about 1 MB
  out = small_disk / 'out'
  full = subprocess.run(_command(out, command), capture_output=True, text=True, timeout=600, check=False)
  assert full.returncode == 1, full.stderr[-3000:]
  assert 'error: the disk is full (No space left on device)' in full.stderr and '--resume' in full.stderr
  assert 'Traceback' not in full.stderr.split('error: the disk is full')[-1]
  assert not (out / 'summary.json').exists()  # incomplete, and says so
  assert not (out / '_lease.json').exists()  # released by the launcher after the failure
  filler.unlink()
  resumed = subprocess.run(_command(out, command + ['--resume']), capture_output=True, text=True, timeout=600,
                           check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['accounted'] and summary['rows_written'] == 1000 and summary['resumed']['skipped_units'] > 0
  assert _rows(out) == _rows(tmp_path / 'clean')
  assert sorted(p.name for p in out.iterdir()) == ['_units', 'errors', 'job.json', 'manifest.json', 'predictions',
                                                   'report.html', 'summary.json']
  assert not [p for p in out.rglob('*') if p.name.startswith('_inprogress')]  # the cut writes are gone
