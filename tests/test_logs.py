"""What the user sees: worker warnings and errors reach the terminal, TensorFlow's start-up notices do not."""
import logging
import os
import shutil
import subprocess
import sys

import pytest

from pipeline import logs
from tests import datagen
from transforms import native_logs


def _worker_record(level: int, entry: str) -> logging.LogRecord:
  """A worker's log entry as the local runner re-logs it."""
  return logging.LogRecord('apache_beam.runners.portability.local_job_service', level, __file__, 1, 'Worker: %s',
                           (entry,), None)


def test_worker_warnings_errors_and_progress_pass_as_plain_lines_beam_chatter_does_not():
  ours = _worker_record(logging.WARNING, 'severity: WARN message: "resume: /o/\\303\\251.parquet is \\"unreadable\\"" '
                        'log_location: "/work/transforms/output/resume.py:50"')
  assert logs._worker_log_filter(ours)  # pylint: disable=protected-access
  assert ours.getMessage() == 'worker: resume: /o/\u00e9.parquet is "unreadable"'
  failed = _worker_record(logging.ERROR, 'severity: ERROR message: "boom" trace: "Traceback\\nValueError: x" '
                          'log_location: "/venv/apache_beam/runners/worker/sdk_worker.py:9"')
  assert logs._worker_log_filter(failed)  # pylint: disable=protected-access
  assert failed.getMessage() == 'worker: boom\nTraceback\nValueError: x'
  progress = _worker_record(logging.INFO, 'severity: INFO message: "progress: worker 7 has done 3 images"')
  assert logs._worker_log_filter(progress) and progress.getMessage() == 'progress: worker 7 has done 3 images'
  beam_warning = _worker_record(logging.WARNING, 'severity: WARN message: "Discarding unparseable args: [...]" '
                                'log_location: "/venv/site-packages/apache_beam/options/pipeline_options.py:1"')
  beam_info = _worker_record(logging.INFO, 'severity: INFO message: "Creating state cache"')
  assert not logs._worker_log_filter(beam_warning) and not logs._worker_log_filter(beam_info)  # pylint: disable=protected-access


def test_native_start_up_notices_are_dropped_and_other_native_output_kept(capfd):
  with native_logs.quiet():
    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n')
    os.write(2, b'I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\n')
    os.write(2, b'E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n')
    os.write(2, b'a real native error\n')
  os.write(2, b'after\n')
  err = capfd.readouterr().err
  assert err == 'a real native error\nafter\n'


@pytest.mark.full
def test_command_prints_no_tensorflow_notices_and_shows_a_worker_warning(tmp_path):
  """The README's first command (on two photos) in a subprocess, then --resume over a broken unit marker."""
  photos = tmp_path / 'photos'
  photos.mkdir()
  for path in sorted(datagen.PHOTOS.iterdir())[:2]:
    shutil.copy(path, photos / path.name)
  out = tmp_path / 'out'
  command = [sys.executable, '-m', 'pipeline', '--input', str(photos), '--output', str(out), '--model',
             str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]), '--labels_file', str(datagen.LABELS), '--task', 'both']
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}  # as on a fresh shell
  first = subprocess.run(command + ['--overwrite'], capture_output=True, text=True, timeout=600, env=env,
                         check=False)
  assert first.returncode == 0, first.stderr[-3000:]
  noise = [line for line in first.stderr.splitlines() if native_logs.NOISE.search(line) or 'oneDNN' in line]
  assert not noise, noise
  broken = sorted((out / '_units').glob('*.json'))[0]
  broken.write_bytes(b'not json')
  resumed = subprocess.run(command + ['--resume'], capture_output=True, text=True, timeout=600, env=env,
                           check=False)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'worker: resume: {broken} is unreadable, its unit is read again' in resumed.stderr
  assert not [line for line in resumed.stderr.splitlines() if native_logs.NOISE.search(line)]
  assert 'Discarding unparseable args' not in resumed.stderr  # Beam's own worker warnings stay out
  assert 'Saved model loading' not in first.stderr  # nor TensorFlow's Python-side INFO notices
