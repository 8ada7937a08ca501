"""A model call or a decode that hangs does not stall the job: past --inference_timeout_seconds or
--decode_timeout_seconds its images become error rows ('timed out') and the rest of the job goes on.

The hangs are made in-process (the job runs in this process, --direct_running_mode=in_memory, as
tests/test_task_both.py does): the TFLite backend's predict waits on an event when a batch holds the marked
image (a flat gray one, whose mean pixel is the marker), and the decoder waits on it for the marked file's
bytes. The event is set at the end, so the abandoned threads finish.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests import datagen
from transforms import decode, elements, watchdog
from transforms.infer import handler
from transforms.infer.models import tflite

IN_PROCESS = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
MARKER = 7  # the mean pixel value of the image the model hangs on


@pytest.fixture(name='release')
def release_fixture():
  event = threading.Event()
  yield event
  event.set()  # the hung calls return, and their threads end


def test_job_goes_on_past_a_hung_model_call_and_a_hung_decode(tmp_path, run_job, monkeypatch, release):
  photos = tmp_path / 'photos'
  datagen.make_jpegs(photos, 5, seed=1, size=(96, 72))
  Image.new('RGB', (64, 48), (MARKER,) * 3).save(photos / 'hangs_in_model.png')
  slow = datagen.make_jpegs(tmp_path / 'slow', 1, seed=2, size=(96, 72))[0]
  slow = slow.rename(photos / 'hangs_in_decode.jpg')
  slow_bytes = slow.read_bytes()

  original_predict, original_open = tflite.TFLiteModel.predict, decode.open_image

  def predict(self, images):
    if any(np.mean(image) == MARKER for image in images):
      release.wait(120)
    return original_predict(self, images)

  def open_image(data, *args, **kwargs):
    if data == slow_bytes:
      release.wait(120)
    return original_open(data, *args, **kwargs)

  monkeypatch.setattr(tflite.TFLiteModel, 'predict', predict)
  monkeypatch.setattr(decode, 'open_image', open_image)
  start = time.monotonic()
  result = run_job(tmp_path / 'out', ['--input', str(photos), '--model', str(datagen.TFLITE_QUANT), '--task', 'both',
                                      '--max_batch_size', '1', '--inference_timeout_seconds', '8',
                                      '--decode_timeout_seconds', '1'], IN_PROCESS)
  assert time.monotonic() - start < 100  # well before the hangs would end by themselves
  rows = {r['id'] for r in result.predictions.to_pylist()}
  assert rows == {f'img_{i:06d}' for i in range(5)}
  errors = {e['id']: e for e in result.errors.to_pylist()}
  assert errors.keys() == {'hangs_in_model', 'hangs_in_decode'}
  assert errors['hangs_in_model']['stage'] == elements.INFER
  assert errors['hangs_in_model']['error_type'] == 'TimeoutError'  # stays a row on its own: batches of 1
  assert 'timed out' in errors['hangs_in_model']['message']
  assert '--inference_timeout_seconds' in errors['hangs_in_model']['message']
  assert errors['hangs_in_decode']['stage'] == elements.DECODE
  assert errors['hangs_in_decode']['error_type'] == 'DecodeTimeout'
  assert 'timed out' in errors['hangs_in_decode']['message']
  summary = result.summary
  assert summary['accounted'] and summary['records_read'] == 7
  assert summary['rows_written'] == 5 and summary['errors'] == 2
  assert summary['errors_by_stage'] == {elements.DECODE: 1, elements.INFER: 1}


def test_watchdog_reuses_one_thread_and_replaces_a_hung_one():
  bound = watchdog.Watchdog('test')
  threads = [bound.call(0.5, threading.get_ident) for _ in range(100)]
  assert len(set(threads)) == 1 and threads[0] != threading.get_ident()  # one helper thread for all calls
  with pytest.raises(ZeroDivisionError):
    bound.call(0.5, lambda: 1 / 0)  # the call's own error, raised in the caller
  release = threading.Event()
  with pytest.raises(watchdog.TimedOut):
    bound.call(0.5, release.wait, 30)
  hung = [t for t in threading.enumerate() if t.ident == threads[0]]
  assert hung and hung[0].daemon  # left to its call; it cannot keep the process from exiting
  assert bound.call(0.5, threading.get_ident) not in threads  # a new thread
  release.set()
  bound.close()


def test_a_timed_out_batch_names_the_option_other_failures_keep_their_message():
  ref = elements.ImageRef('a', 'file:///a.jpg')
  batch = [elements.DecodedImage(ref, 1, 1, np.zeros((1, 1, 3), np.uint8))]
  to_errors = handler.failed_batch_errors
  timed_out, = to_errors(batch, TimeoutError('model timed out after 8 s'), 8)
  assert 'timed out' in timed_out.message and '8 s' in timed_out.message and timed_out.stage == elements.INFER
  failed, = to_errors(batch, ValueError('bad'), 8)
  assert "ValueError('bad')" in failed.message and 'timed out' not in failed.message


HANG_FOREVER = '''
import time
import numpy as np
from transforms.infer.models import tflite
_predict = tflite.TFLiteModel.predict
def predict(self, images):
  if any(np.mean(image) == %d for image in images):
    time.sleep(10 ** 6)  # never returns within the test
  return _predict(self, images)
tflite.TFLiteModel.predict = predict
''' % MARKER


@pytest.mark.full
def test_a_model_call_that_never_returns_does_not_keep_the_job_from_ending(tmp_path):
  """On the local runner's worker processes: the stuck call's thread is a daemon, so the worker process, and
  the launcher waiting for it, still exit (Beam's own timeout threads would be joined at exit)."""
  photos, hooks = tmp_path / 'photos', tmp_path / 'hooks'
  datagen.make_jpegs(photos, 4, seed=1, size=(96, 72))
  Image.new('RGB', (64, 48), (MARKER,) * 3).save(photos / 'hangs_in_model.png')
  hooks.mkdir()
  (hooks / 'sitecustomize.py').write_text(HANG_FOREVER)  # loaded by the launcher and every worker process
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hooks), str(datagen.ROOT)]))
  proc = subprocess.run([sys.executable, '-m', 'pipeline', '--input', str(photos), '--output', str(tmp_path / 'out'),
                         '--model', str(datagen.TFLITE_QUANT), '--max_batch_size', '1',
                         '--inference_timeout_seconds', '5'], env=env, capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
  assert summary['accounted'] and summary['rows_written'] == 4 and summary['errors_by_stage'] == {'infer': 1}
