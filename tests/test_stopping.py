"""SIGTERM or SIGINT to the launcher stops the job: the submitted job is cancelled, the local workers end, the
output is left incomplete but resumable (no summary.json), the exit code is 128 + the signal, and --resume then
gives the output of one clean run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from pipeline import job_end, stopping
from tests import datagen


class FakeResult:
  cancelled = False

  def cancel(self):
    self.cancelled = True


@pytest.mark.parametrize('signum, code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_cancels_the_job_ends_the_children_and_raises_stopped(signum, code, monkeypatch):
  child = subprocess.Popen(['sleep', '60'])  # stands for a local worker process
  assert child.pid in stopping._children()  # pylint: disable=protected-access
  # Only that one: this test process may have other children (a session's emulator or cluster).
  monkeypatch.setattr(stopping, '_children', lambda: [child.pid])
  before = signal.getsignal(signum)
  with pytest.raises(stopping.Stopped) as stopped:
    with stopping.on_signals('out/x') as watch:
      watch.result = FakeResult()
      os.kill(os.getpid(), signum)
      time.sleep(5)  # the handler raises in this thread before this ends
  assert stopped.value.exit_code == code and watch.result.cancelled
  assert 'stopped by ' + signal.Signals(signum).name in str(stopped.value) and '--resume' in str(stopped.value)
  assert child.wait(timeout=10) == -signal.SIGTERM
  assert signal.getsignal(signum) == before  # handlers restored



class _Polled:
  """A Flink job whose state is being polled (an HTTP request) when the signal comes."""

  def state(self):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises in here


class _Running(FakeResult):
  def wait_until_finish(self):
    time.sleep(30)


def test_a_signal_during_a_flink_poll_still_stops_the_launcher(monkeypatch):
  """The wait's poll catches what a failed HTTP request raises; the stop must pass through it (seen in CI: the
  launcher reported the job it had cancelled as failed, exit 1, not 143)."""
  monkeypatch.setattr(stopping, '_children', lambda: [])
  with pytest.raises(stopping.Stopped) as stopped:
    with stopping.on_signals('out/x') as watch:
      watch.result = _Running()
      job_end.wait(watch.result, _Polled(), 'ns')
  assert stopped.value.exit_code == 143 and watch.result.cancelled

IMAGES = 400
JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'classify', '--labels_file', str(datagen.LABELS),
       '--files_per_unit', '10', '--max_batch_size', '4']


def _command(photos, out, *extra):
  return [sys.executable, '-m', 'pipeline', '--input', str(photos), '--output', str(out)] + JOB + list(extra)


@pytest.mark.full
def test_sigterm_stops_the_job_and_resume_finishes_it(tmp_path):
  photos, clean_out, out = tmp_path / 'photos', tmp_path / 'clean', tmp_path / 'out'
  datagen.make_jpegs(photos, IMAGES, seed=5, size=(48, 36))
  subprocess.run(_command(photos, clean_out), check=True, capture_output=True, timeout=600)
  clean = {r['id']: r for r in pq.read_table(clean_out / 'predictions').to_pylist()}

  proc = subprocess.Popen(_command(photos, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  while not list(out.glob('_units/*.json')):
    assert proc.poll() is None, 'the job ended before it could be stopped'
    assert time.monotonic() < deadline, 'no read unit was committed'
    time.sleep(0.05)
  workers = psutil.Process(proc.pid).children(recursive=True)
  assert workers  # the local runner's worker processes
  proc.send_signal(signal.SIGTERM)  # the launcher only, as a scheduler does
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 143, stderr[-3000:]
  assert 'the job was stopped by SIGTERM' in stderr and '--resume' in stderr
  assert not (out / 'summary.json').exists()  # incomplete, and says so
  named = {p for m in out.glob('_units/*.json') for p in json.loads(m.read_text())['parts'].values()}
  unnamed = {p for p in out.glob('predictions/part-*') if p.name not in named}  # its marker not written yet
  for part in unnamed:
    pq.read_metadata(part)  # whole, as every part in place is; the resume's commit deletes it
  assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]

  resumed = subprocess.run(_command(photos, out, '--resume'), capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['accounted'] and summary['rows_written'] == IMAGES and summary['resumed']['skipped_units'] > 0
  assert not [p for p in unnamed if p.exists()]
  table = pq.read_table(out / 'predictions')
  rows = {r['id']: r for r in table.to_pylist()}
  assert table.num_rows == len(rows) == IMAGES and rows.keys() == clean.keys()  # each id once
  for key, row in rows.items():
    assert row['top_classes'] == clean[key]['top_classes']
    assert np.allclose(row['top_scores'], clean[key]['top_scores'], atol=1e-6)
