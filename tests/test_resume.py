"""A job killed part-way (a real SIGKILL of the launcher and its workers) and rerun with --resume ends with the
output a clean run writes, each id once, on each input format; the resumed run reads no record of a unit
committed before the kill (counted by Beam's read counter and by the summary); killed again while it resumes,
a further --resume is still exact."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline import pack
from tests import datagen

pytestmark = pytest.mark.full

IMAGES = 800
PER_UNIT = 25
JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'both', '--labels_file', str(datagen.LABELS),
       '--max_batch_size', '8', '--files_per_unit', str(PER_UNIT)]


@pytest.fixture(scope='module', name='inputs')
def inputs_fixture(tmp_path_factory):
  """The same images as a folder, TFRecord shards and tar shards (25 per shard: one unit each)."""
  root = tmp_path_factory.mktemp('inputs')
  photos = root / 'photos'
  datagen.make_jpegs(photos, IMAGES, seed=3, size=(48, 36))
  (photos / 'broken.jpg').write_bytes(b'<html>not an image</html>')
  found = {'images': str(photos)}
  for fmt in ('tfrecord', 'tar'):
    pack.pack([str(photos)], str(root / fmt / 'shard'), fmt, images_per_shard=PER_UNIT)
    found[fmt] = str(root / fmt)
  return found


def _command(source, out, *extra):
  return [sys.executable, '-m', 'pipeline', '--input', source, '--output', str(out)] + JOB + list(extra)


def _markers(out) -> dict:
  return {p.name: json.loads(p.read_text()) for p in (out / '_units').glob('*.json')}


def _kill_after_units(command, out, at_least: int, timeout: float = 300) -> dict:
  """Starts the job, SIGKILLs it and its workers once at least `at_least` units are committed; returns the
  markers then committed."""
  proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.monotonic() + timeout
  try:
    while len(list(out.glob('_units/*.json'))) < at_least:
      assert proc.poll() is None, 'the job ended before it could be killed'
      assert time.monotonic() < deadline, 'no unit was committed'
      time.sleep(0.02)
  finally:
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its worker processes
    proc.wait()
  return _markers(out)


def _resume(source, out) -> dict:
  proc = subprocess.run(_command(source, out, '--resume'), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout)  # the summary, as printed: with the reads per worker from Beam's metrics


def _rows(out):
  table = pq.read_table(out / 'predictions')
  return {r['id']: r for r in table.to_pylist()}, table.num_rows


def _check_same_as_clean(out, clean_out) -> None:
  clean, _ = _rows(clean_out)
  rows, count = _rows(out)
  assert count == len(rows) == len(clean) == IMAGES  # each id once
  assert rows.keys() == clean.keys()
  for key, row in rows.items():
    assert row['top_classes'] == clean[key]['top_classes'] and row['source'] == clean[key]['source']
    assert np.allclose(row['embedding'], clean[key]['embedding'], atol=1e-6)
  assert [e['id'] for e in pq.read_table(out / 'errors').to_pylist()] == ['broken']
  named = {part for m in _markers(out).values() for part in m['parts'].values()}
  parts = {p.name for name in ('predictions', 'errors') for p in (out / name).iterdir()} - {'part-empty.parquet'}
  assert parts == named  # no orphan of a killed or retried unit, nothing half-written
  assert sorted(p.name for p in out.iterdir()) == ['_units', 'errors', 'job.json', 'manifest.json', 'predictions',
                                                   'report.html', 'summary.json']


def _check_read_only_the_rest(summary: dict, committed: dict) -> None:
  """The resumed run skipped every unit committed before the kill, and read only the others' records."""
  done = sum(m['records'] for m in committed.values())
  assert summary['accounted'] and summary['records_read'] == IMAGES + 1
  assert summary['rows_written'] == IMAGES and summary['errors'] == 1
  resumed = summary['resumed']
  assert resumed['skipped_units'] == len(committed) and resumed['skipped_records'] == done
  assert resumed['redone_records'] == IMAGES + 1 - done
  assert sum(summary['records_read_by_worker']) == IMAGES + 1 - done  # Beam's count of records actually read


@pytest.fixture(scope='module', name='clean')
def clean_fixture(inputs, tmp_path_factory):
  outs = {}
  for fmt, source in inputs.items():
    outs[fmt] = tmp_path_factory.mktemp('clean') / fmt
    subprocess.run(_command(source, outs[fmt]), check=True, capture_output=True, timeout=600)
  return outs


@pytest.mark.parametrize('fmt', ['images', 'tfrecord', 'tar'])
def test_killed_job_resumes_to_the_clean_output_reading_only_unfinished_units(fmt, inputs, clean, tmp_path):
  out = tmp_path / 'out'
  committed = _kill_after_units(_command(inputs[fmt], out), out, at_least=4)
  assert not (out / 'summary.json').exists()  # incomplete, and says so
  assert 4 <= len(committed) < IMAGES // PER_UNIT
  summary = _resume(inputs[fmt], out)
  _check_read_only_the_rest(summary, committed)
  _check_same_as_clean(out, clean[fmt])


def test_killed_again_while_resuming_then_resumed_is_still_exact(inputs, clean, tmp_path):
  out = tmp_path / 'out'
  first = _kill_after_units(_command(inputs['tfrecord'], out), out, at_least=3)
  second = _kill_after_units(_command(inputs['tfrecord'], out, '--resume'), out, at_least=len(first) + 3)
  assert set(first) < set(second)  # the first run's units were kept, and more committed
  summary = _resume(inputs['tfrecord'], out)
  _check_read_only_the_rest(summary, second)
  _check_same_as_clean(out, clean['tfrecord'])
