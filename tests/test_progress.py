"""Live progress (issue 21): one line for all workers, a bar on a terminal, plain lines elsewhere, and its total."""
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from pipeline import live_progress, progress_view
from pipeline.progress_view import Snapshot
from tests import datagen, flink_rest
from transforms import progress
from transforms.read import list_inputs, match, totals
from transforms.read.formats import webdataset
from transforms.read.formats.detect import IMAGES, TAR, TFRECORD

MODEL = str(datagen.TFLITE_QUANT)


class Clock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_rate_is_measured_from_the_first_image_over_a_recent_window():
  clock = Clock()
  rate = progress_view.Rate(window=10, clock=clock)
  assert rate.add(0) is None  # start-up: no image yet, no rate
  clock.now += 5
  assert rate.add(10) is None  # one observation
  clock.now += 2
  assert rate.add(30) == pytest.approx(10.0)  # 20 images in 2 s, the 5 s of start-up not counted
  for _ in range(10):
    clock.now += 2
    last = rate.add(30 + 40 * (clock.now - 107) // 2)  # now 20 images/s
  assert last == pytest.approx(20.0)  # the slow start has left the window


def test_eta_and_the_plain_line():
  assert progress_view.eta_seconds(100, 1100.0, 50.0) == pytest.approx(20.0)
  assert progress_view.eta_seconds(100, None, 50.0) is None and progress_view.eta_seconds(100, 200.0, None) is None
  assert progress_view.line(Snapshot(1234, 3, 0, 5000.0), 102.34) == \
      'progress: 1,234/5,000 images (24.7%), 102.3 images/s, 3 errors, ETA 0:37'
  assert progress_view.line(Snapshot(10, 0, 0, None), None) == 'progress: 10 images, starting, 0 errors'
  assert progress_view.line(Snapshot(10, 0, 0, 10.0), None, final=True) == 'progress: 10/10 images (100.0%), 0 errors'
  assert progress_view.line(Snapshot(10, 0, 0, 10.0), 0.0, final=True) == 'progress: 10/10 images (100.0%), 0 errors'
  resumed = progress_view.line(Snapshot(700, 0, 500, 7200.5, estimated=True), 10.0)
  assert resumed == 'progress: 700/~7,200 images (9.7%), 10.0 images/s, 0 errors, 500 kept from earlier runs, ETA 10:50'
  assert progress_view.clock_text(3725) == '1:02:05'


def test_plain_lines_come_every_interval_and_once_at_the_end():
  clock, stream = Clock(), io.StringIO()
  lines = progress_view.Lines(10, stream, clock)
  for done in range(0, 100, 5):  # a poll every 2 s for 40 s: a line at 10, 20 and 30 s
    lines.update(Snapshot(done, 0, 0, 100.0))
    clock.now += 2
  lines.close(Snapshot(100, 1, 0, 100.0))
  shown = stream.getvalue().splitlines()
  assert len(shown) == 4 and shown[-1].startswith('progress: 100/100 images (100.0%)'), shown
  assert 'ETA' in shown[0] and '1 errors' in shown[-1]
  stream = io.StringIO()
  jumped = progress_view.Lines(10, stream, clock)
  jumped.update(Snapshot(0, 0, 0, 307.0))
  clock.now += 12
  jumped.update(Snapshot(307, 1, 0, 307.0))  # all at once between two polls, as Flink's counters can
  jumped.close(Snapshot(307, 1, 0, 307.0))  # the same counts: still the last line, without "starting"
  assert stream.getvalue().splitlines() == ['progress: 307/307 images (100.0%), starting, 1 errors',
                                            'progress: 307/307 images (100.0%), 1 errors']


def test_the_total_estimates_each_formats_records_from_its_own_bytes_read():
  assert totals.estimate(None, {'tfrecord_records': 5, 'tfrecord_bytes': 100}) is None  # not counted yet
  assert totals.estimate(totals.Totals(40), {}) == 40 and not totals.is_estimated(totals.Totals(40), {})
  mixed = totals.Totals(40, {TFRECORD: 1000, TAR: 10_000})
  assert totals.estimate(mixed, {'tfrecord_records': 25, 'tfrecord_bytes': 250}) is None  # no tar byte read yet
  counts = {'tfrecord_records': 25, 'tfrecord_bytes': 250, 'tar_records': 30, 'tar_bytes': 2_000}
  # 40 exact + 25 records per 250 TFRecord bytes over 1,000 + 30 samples per 2,000 tar bytes over 10,000
  assert totals.estimate(mixed, counts) == pytest.approx(40 + 100 + 150)
  assert totals.is_estimated(mixed, counts)
  whole = dict(counts, tfrecord_records=100, tfrecord_bytes=1000, tar_records=140, tar_bytes=10_000)
  assert totals.estimate(mixed, whole) == pytest.approx(280) and not totals.is_estimated(mixed, whole)
  assert totals.is_estimated(mixed, dict(whole, tar_bytes=9_999))  # "~N" while any part is projected


def _shard(path, samples, gzip=False):
  with open(path, 'wb') as f:
    writer = webdataset.ShardWriter(f, gzip=gzip)
    for i in range(samples - 1):
      writer.add(f'{path.name}/{i:03d}', {'jpg': b'x' * 700, 'json': b'{}'})
    writer.add('000', {'jpg': b'y'})  # a key seen before, not adjacent: a sample of its own
    writer.close()


def test_the_total_is_what_the_listing_counted_and_grows_until_every_input_is_listed(tmp_path, monkeypatch):
  images = tmp_path / 'images'
  datagen.make_jpegs(images, 3, size=(40, 30))
  (images / 'notes.txt').write_text('not an image')  # a folder names only files of its format
  shards = tmp_path / 'shards'
  shards.mkdir()
  _shard(shards / 'a.tar', 5)
  _shard(shards / 'b.tar.gz', 5, gzip=True)
  records = tmp_path / 'r.tfrecord'
  records.write_bytes(b'\0' * 1234)

  def refused(path, *args, **kwargs):
    raise AssertionError(f'{path} opened to count it')

  monkeypatch.setattr(match.FileSystems, 'open', refused)  # listing opens nothing
  monkeypatch.setenv(progress.FOLDER_ENV, str(tmp_path / 'run'))
  inputs = [(str(images), IMAGES), (f'{shards}/*', TAR), (str(records), TFRECORD)]
  assert totals.from_counts(progress.snapshot(), len(inputs)) is None  # nothing listed yet: no total
  patterns = [pattern for pattern, _ in inputs]
  for i, (pattern, fmt) in enumerate(inputs):
    cut = list_inputs.shards(patterns, i, fmt, False, 64)
    listed = []
    for k, shard in enumerate(cut):
      listed += list_inputs.counted(list_inputs.shard_refs(shard), fmt)
      found = totals.from_counts(progress.snapshot(), len(inputs))
      assert found.listed == (i == len(inputs) - 1 and k == len(cut) - 1)
    assert len(listed) == [3, 2, 1][i]
    assert totals.is_estimated(found, {'tar_bytes': 10**9, 'tfrecord_bytes': 10**9}) == (not found.listed)
  tar_bytes = sum(p.stat().st_size for p in shards.iterdir())
  assert found == totals.Totals(3, {TAR: tar_bytes, TFRECORD: 1234}, True)


def test_the_tar_reader_reports_samples_and_bytes_of_every_shard(tmp_path, monkeypatch):
  """What the workers report matches what the listing counted by bytes: all of a shard's bytes and its
  samples, compressed or not."""
  from transforms.read import outcomes, tar_shards  # pylint: disable=import-outside-toplevel
  from transforms.read.settings import ReadSettings  # pylint: disable=import-outside-toplevel
  _shard(tmp_path / 'a.tar', 6)
  _shard(tmp_path / 'b.tar.gz', 5, gzip=True)
  _shard(tmp_path / 'c.tar', 4, gzip=True)
  for name, records in (('a.tar', 6), ('b.tar.gz', 5), ('c.tar', 4)):
    path = tmp_path / name
    monkeypatch.setenv(progress.FOLDER_ENV, str(tmp_path / f'run-{name}'))  # a new run: counts from zero
    rows = [out for out in tar_shards.reader(ReadSettings()).process(match.FileRef(str(path), '', None))
            if getattr(out, 'tag', None) != outcomes.COUNTS_TAG]  # what the shard noted beside its records
    assert len(rows) == records
    counts = progress.snapshot()
    assert (counts['tar_records'], counts['tar_bytes']) == (records, path.stat().st_size)
    assert counts['tfrecord_bytes'] == 0


def test_a_worker_publishes_its_counts_where_the_launcher_says(tmp_path, monkeypatch):
  monkeypatch.setenv(progress.FOLDER_ENV, str(tmp_path))
  progress.add(3, 10.0)
  progress.add(0, 10.0, errors=2)
  progress.read_tfrecord(4, 400)
  progress.skipped(7)
  deadline = time.monotonic() + 5
  while live_progress.folder_counts(str(tmp_path))['done'] != 12:
    assert time.monotonic() < deadline, os.listdir(tmp_path)
    time.sleep(0.1)
  assert live_progress.folder_counts(str(tmp_path)) == dict(
      dict.fromkeys(progress.FIELDS, 0), done=12, errors=2, skipped=7, tfrecord_records=4, tfrecord_bytes=400)
  monkeypatch.setenv(progress.FOLDER_ENV, str(tmp_path / 'next_run'))
  progress.add(1, 10.0)
  assert progress.snapshot()['done'] == 1  # a new run in the same process counts from zero


def test_flink_counts_come_from_its_rest_api_while_the_job_runs():
  metrics = [{'labels': {'NAMESPACE': 'progress', 'NAME': name, 'PTRANSFORM': step}, 'payload': flink_rest.payload(n)}
             for name, n, step in (('done', 300, 'Format'), ('errors', 2, 'Format'), ('done', 5, 'Skip'),
                                   ('skipped', 5, 'Skip'))]
  metrics.append({'labels': {'NAMESPACE': 'images', 'NAME': 'done'}, 'payload': flink_rest.payload(9)})  # another counter
  answers = {'/jobs/overview': {'jobs': [{'jid': 'old', 'name': 'ours', 'start-time': 1},
                                         {'jid': 'j2', 'name': 'ours', 'start-time': 2},
                                         {'jid': 'j3', 'name': 'theirs', 'start-time': 3}]},
             '/jobs/j2/accumulators': flink_rest.accumulators(metrics)}
  with flink_rest.serve(answers) as master:
    counts = live_progress.FlinkCounts(live_progress.FlinkJob(master, 'ours'))()
  assert counts == dict(dict.fromkeys(progress.FIELDS, 0), done=305, errors=2, skipped=5)


@pytest.fixture(name='images', scope='module')
def images_fixture(tmp_path_factory):
  folder = tmp_path_factory.mktemp('progress_images')
  datagen.make_jpegs(folder / 'generated', 120)
  return [str(folder), str(datagen.PHOTOS)]  # 120 + 6 images


def _command(images, out, *extra):
  return [sys.executable, '-m', 'pipeline', '--input', ','.join(images), '--output', str(out), '--model', MODEL,
          '--task', 'classify', '--noreport', *extra]


def test_a_terminal_gets_one_bar_that_reaches_the_total(images, tmp_path):
  leader, follower = pty.openpty()
  fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack('HHHH', 40, 120, 0, 0))  # rows, columns, as a terminal
  proc = subprocess.Popen(_command(images, tmp_path / 'out'), cwd=datagen.ROOT, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=follower)
  os.close(follower)
  seen = bytearray()
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    ready, _, _ = select.select([leader], [], [], 1)
    if ready:
      try:
        chunk = os.read(leader, 65536)
      except OSError:  # the job closed its end
        break
      if not chunk:
        break
      seen += chunk
    elif proc.poll() is not None:
      break
  os.close(leader)
  out, _ = proc.communicate(timeout=60)
  terminal = seen.decode('utf-8', 'replace')
  assert proc.returncode == 0, terminal[-3000:]
  assert json.loads(out)['records_read'] == 126
  assert re.search(r'progress: 100%\|[^\n]*\| 126/126 ', terminal), terminal[-2000:]  # tqdm's bar, full
  assert '\r' in terminal  # redrawn in place
  assert 'progress: 126/126 images' not in terminal  # no plain lines on a terminal


@pytest.mark.full  # 25 s; Lines is tested alone above
def test_without_a_terminal_plain_lines_every_interval(images, tmp_path):
  slow = ['--max_batch_size', '1']  # a few seconds of work: lines with a rate and an ETA before the last
  proc = subprocess.run(_command(images, tmp_path / 'out', '--progress_seconds', '0.5', *slow), cwd=datagen.ROOT,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  shown = [line for line in proc.stderr.splitlines() if line.startswith('progress: ')]
  assert len(shown) >= 3, proc.stderr[-3000:]
  assert shown[-1].startswith('progress: 126/126 images (100.0%)'), shown
  # (a line without a total until the workers' listing has counted some input: progress: N images)
  done = [int(re.match(r'progress: ([\d,]+)[/ ]', line).group(1).replace(',', '')) for line in shown]
  assert done == sorted(done) and done[0] < 126, shown  # counts that grow while the job runs
  assert '\r' not in proc.stderr and 'worker' not in ' '.join(shown)  # one line for all workers, no redraws
