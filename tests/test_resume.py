"""A job killed part-way (a real SIGKILL of the job and its workers) and rerun with --resume ends with the
output a clean run writes, each id once, without redoing what it had finished."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests import datagen

pytestmark = pytest.mark.full

IMAGES = 1500
JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'both', '--labels_file', str(datagen.LABELS),
       '--checkpoint_rows', '20']


def _command(photos, out, *extra):
  return [sys.executable, '-m', 'pipeline', '--input', f'{photos}/*', '--output', str(out)] + JOB + list(extra)


def _kill_after_checkpoints(command, out, at_least: int, timeout: float = 300) -> None:
  proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
  deadline = time.monotonic() + timeout
  try:
    while len(list(out.glob('_checkpoints/*/predictions/*.parquet'))) < at_least:
      assert proc.poll() is None, 'the job ended before it could be killed'
      assert time.monotonic() < deadline, 'no checkpoints appeared'
      time.sleep(0.02)
  finally:
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and its worker processes
    proc.wait()


def _rows(out):
  table = pq.read_table(out / 'predictions')
  return {r['id']: r for r in table.to_pylist()}, table.num_rows


def test_killed_job_resumes_to_the_clean_output(tmp_path):
  photos = tmp_path / 'photos'
  datagen.make_jpegs(photos, IMAGES, seed=3, size=(96, 72))
  (photos / 'broken.jpg').write_bytes(b'<html>not an image</html>')
  clean_out, out = tmp_path / 'clean', tmp_path / 'out'
  subprocess.run(_command(photos, clean_out), check=True, capture_output=True, timeout=600)
  clean, _ = _rows(clean_out)

  _kill_after_checkpoints(_command(photos, out), out, at_least=3)
  assert not (out / 'summary.json').exists()  # incomplete, and says so
  assert not list(out.glob('predictions/*.parquet'))  # nothing a reader of predictions/ could take as complete
  finished = sum(pq.read_metadata(p).num_rows for p in out.glob('_checkpoints/*/*/*.parquet'))
  assert finished >= 3 * 20

  proc = subprocess.run(_command(photos, out, '--resume'), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((out / 'summary.json').read_text())
  resumed = summary['resumed']
  assert resumed['skipped_as_done'] == resumed['carried_rows'] + resumed['carried_errors'] > 0
  assert resumed['skipped_as_done'] <= finished  # a retried bundle may have checkpointed rows twice
  assert summary['accounted'] and summary['records_read'] == IMAGES + 1
  assert summary['rows_written'] == IMAGES and summary['errors'] == 1

  rows, count = _rows(out)
  assert count == len(rows) == len(clean) == IMAGES  # each id once
  assert rows.keys() == clean.keys()
  for key, row in rows.items():
    assert row['top_classes'] == clean[key]['top_classes'] and row['source'] == clean[key]['source']
    assert np.allclose(row['embedding'], clean[key]['embedding'], atol=1e-6)
  errors = pq.read_table(out / 'errors').to_pylist()
  assert [e['id'] for e in errors] == ['broken']
  assert not (out / '_checkpoints').exists() and not (out / '_staging').exists()
