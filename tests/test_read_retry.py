"""Reads that survive flaky storage (transforms/read/retry.py): a file that fails part-way with a storage error
is reopened where the read stopped, every record read once and in order; one that keeps failing is reported
unread, exactly where, with nothing lost or duplicated; errors about the data are not retried."""
import gzip
import io
import tarfile
import zlib

import pytest
from apache_beam.io.filesystem import CompressedFile, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import elements
from transforms.read import image_files, match, outcomes, retry, tar_shards, tfrecord_shards
from transforms.read.formats import tf_example, tfrecord
from transforms.read.settings import ReadSettings

_REAL_OPEN = FileSystems.open


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
  monkeypatch.setattr(retry, 'BACKOFF_SECONDS', 0.0)


class _Flaky:
  """A file that raises ConnectionResetError when a read reaches byte `fail_at`, `failures` times in all."""

  def __init__(self, f, plan):
    self._f, self._plan = f, plan

  def read(self, n=-1):
    pos = self._f.tell()
    fail_at = self._plan['fail_at']
    if self._plan['failures'] > 0 and pos <= fail_at and (n is None or n < 0 or pos + n > fail_at):
      if pos < fail_at:  # the bytes before the cut arrive
        return self._f.read(fail_at - pos)
      self._plan['failures'] -= 1
      self._plan['raised'] += 1
      raise ConnectionResetError(f'connection reset at byte {fail_at}')
    return self._f.read(n)

  def __getattr__(self, name):
    return getattr(self._f, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self._f.close()


def _flaky_open(monkeypatch, plans):
  """Makes FileSystems.open flaky for the paths in plans ({path: {'fail_at': byte, 'failures': n}})."""
  for plan in plans.values():
    plan.setdefault('raised', 0)

  def fake_open(path, mime_type='application/octet-stream', compression_type=CompressionTypes.AUTO):
    raw = _REAL_OPEN(path, compression_type=CompressionTypes.UNCOMPRESSED)
    plan = plans.get(str(path))
    f = _Flaky(raw, plan) if plan else raw
    if compression_type == CompressionTypes.GZIP:
      return CompressedFile(f, CompressionTypes.GZIP)
    return f

  monkeypatch.setattr(FileSystems, 'open', fake_open)


def _records(n, size=3000):
  return [tf_example.make_example(b'%d' % i * (size + 37 * i), f'id{i}', f'f{i}.jpg', 'jpeg') for i in range(n)]


def _tfrecord(path, records, compress=False):
  data = b''.join(tfrecord.encode_record(r) for r in records)
  path.write_bytes(gzip.compress(data) if compress else data)
  return path


def _read_ranges(path, ranges, settings=ReadSettings()):
  """What _ReadRanges gives for the ranges: (kind, value) in order, kind images, errors or unread."""
  fn = tfrecord_shards._ReadRanges(settings)  # pylint: disable=protected-access
  out = []
  for start, end, size in ranges:
    for item in fn.process(tfrecord_shards.Range(str(path), start, end, size)):
      if hasattr(item, 'tag'):
        out.append((item.tag, item.value))
      else:
        out.append(('images', item.ref.id))
  return out


# The helper alone.

def _numbers(log, fail_after, failures):
  """read(position) yielding 0..9 from position, failing after `fail_after` items, `failures` times."""
  def read(position):
    for i in range(position, 10):
      if i == fail_after and failures[0] > 0:
        failures[0] -= 1
        log.append(('failed at', i))
        raise ConnectionResetError('reset')
      yield i, i + 1
  return read


def test_retries_continue_where_the_read_stopped():
  log, waits = [], []
  items = list(retry.resilient(_numbers(log, 4, [3]), 0, str, sleep=waits.append))
  assert items == list(range(10))
  assert log == [('failed at', 4)] * 3
  assert len(waits) == 3


def test_backoff_doubles_and_is_capped(monkeypatch):
  monkeypatch.setattr(retry, 'BACKOFF_SECONDS', 1.0)
  assert [retry.backoff(a) for a in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_storage_that_keeps_failing_is_reported_unread():
  log, waits = [], []
  items = list(retry.resilient(_numbers(log, 6, [100]), 0, lambda at: f'x#from={at}', sleep=waits.append))
  assert items[:-1] == list(range(6))
  assert isinstance(items[-1], retry.Unread) and items[-1].location == 'x#from=6'
  assert len(log) == retry.ATTEMPTS and len(waits) == retry.ATTEMPTS - 1


@pytest.mark.parametrize('error', [tarfile.ReadError('bad'), EOFError('cut'), zlib.error('bad'),
                                   gzip.BadGzipFile('bad'), FileNotFoundError('gone'), ValueError('bad CRC')])
def test_data_errors_are_not_retried(error):
  def read(position):
    yield 1, 1
    raise error
  items = retry.resilient(read, 0, str, sleep=lambda s: pytest.fail('retried a data error'))
  assert next(items) == 1
  with pytest.raises(type(error)):
    next(items)


def test_storage_errors():
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  for e in (OSError('x'), ConnectionResetError(), TimeoutError(), exceptions.ServiceUnavailable('503'),
            exceptions.TooManyRequests('429')):
    assert retry.is_storage_error(e), e
  for e in (exceptions.NotFound('404'), exceptions.Forbidden('403'), tarfile.ReadError(), zlib.error()):
    assert not retry.is_storage_error(e), e


# The readers with a flaky file.

@pytest.mark.parametrize('compress', [False, True])
def test_tfrecord_ranges_survive_resets(tmp_path, monkeypatch, compress):
  path = _tfrecord(tmp_path / ('a.tfrecord' + ('.gz' if compress else '')), _records(40), compress)
  size = path.stat().st_size
  ranges = [(0, None, None)] if compress else [(s, e, size) for s, e in tfrecord.split_ranges(size, 20000, 20000)]
  clean = _read_ranges(path, ranges)
  assert [v for _, v in clean] == [f'id{i}' for i in range(40)]
  plans = {str(path): {'fail_at': size // 2 + 7, 'failures': 3}}
  _flaky_open(monkeypatch, plans)
  assert _read_ranges(path, ranges) == clean
  assert plans[str(path)]['raised'] == 3


def test_tfrecord_range_that_keeps_failing_is_unread(tmp_path, monkeypatch):
  records = _records(40)
  path = _tfrecord(tmp_path / 'a.tfrecord', records)
  size = path.stat().st_size
  ranges = [(s, e, size) for s, e in tfrecord.split_ranges(size, 30000, 30000)]
  fail_at = 20000  # in the first range, which starts at a record (later ranges scan a 1 MiB chunk ahead first)
  _flaky_open(monkeypatch, {str(path): {'fail_at': fail_at, 'failures': 1000}})
  got = _read_ranges(path, ranges)
  ids = [v for k, v in got if k == 'images']
  unread = [v for k, v in got if k == retry.UNREAD_TAG]
  assert not [v for k, v in got if k == elements.ERRORS_TAG]
  # Records that end before the failing byte were read once each, in order; the rest of that range is unread.
  offsets, offset = [], 0
  for r in records:
    offsets.append(offset)
    offset += len(r) + tfrecord.OVERHEAD
  stuck = next(s for s, e, _ in ranges if s <= fail_at < e)
  stuck_end = next(e for s, e, _ in ranges if s == stuck)
  first_lost = max(i for i, o in enumerate(offsets) if o + len(records[i]) + tfrecord.OVERHEAD <= fail_at) + 1
  lost = [i for i, o in enumerate(offsets) if offsets[first_lost] <= o < stuck_end]
  assert ids == [f'id{i}' for i in range(40) if i not in lost]
  assert len(ids) == len(set(ids))
  assert unread == [f'{path}#bytes={offsets[first_lost]}-{stuck_end}']


def _tar(path, n, size=5000):
  with tarfile.open(path, 'w') as tar:
    for i in range(n):
      for ext, data in (('jpg', b'%d' % i * size), ('txt', b'caption %d' % i)):
        info = tarfile.TarInfo(f'k{i:03d}.{ext}')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return path


def _read_shard(path, settings=ReadSettings()):
  fn = tar_shards._ReadShards(settings)  # pylint: disable=protected-access
  return [(item.tag, item.value) if hasattr(item, 'tag') else ('images', item.ref.id)
          for item in fn.process(match.FileRef(str(path), 'x', None))
          if getattr(item, 'tag', None) != outcomes.COUNTS_TAG]  # the shard's unused members: not records


def test_tar_shard_survives_resets(tmp_path, monkeypatch):
  path = _tar(tmp_path / 'a.tar', 20)
  clean = _read_shard(path)
  assert [v for _, v in clean] == [f'k{i:03d}' for i in range(20)]
  plans = {str(path): {'fail_at': path.stat().st_size // 3, 'failures': 2}}
  _flaky_open(monkeypatch, plans)
  assert _read_shard(path) == clean
  assert plans[str(path)]['raised'] == 2


def test_tar_shard_that_keeps_failing_is_unread(tmp_path, monkeypatch):
  path = _tar(tmp_path / 'a.tar', 20)
  _flaky_open(monkeypatch, {str(path): {'fail_at': path.stat().st_size // 2, 'failures': 1000}})
  got = _read_shard(path)
  ids = [v for k, v in got if k == 'images']
  assert ids == [f'k{i:03d}' for i in range(len(ids))] and 0 < len(ids) < 20
  assert got[-1] == (retry.UNREAD_TAG, f'{path}#after_member=k{len(ids) - 1:03d}.txt')
  assert len(got) == len(ids) + 1


def test_image_file_is_reread_or_reported_unread(tmp_path, monkeypatch):
  path = tmp_path / 'a.jpg'
  path.write_bytes(b'x' * 10000)
  plans = {str(path): {'fail_at': 5000, 'failures': 2}}
  _flaky_open(monkeypatch, plans)
  fn = image_files._ReadFile()  # pylint: disable=protected-access
  (image,) = fn.process(match.FileRef(str(path), 'a', 10000))
  assert image.data == b'x' * 10000 and plans[str(path)]['raised'] == 2
  plans[str(path)]['failures'] = 1000
  (unread,) = fn.process(match.FileRef(str(path), 'a', 10000))
  assert (unread.tag, unread.value) == (retry.UNREAD_TAG, str(path))


def test_missing_file_stays_an_error_row(tmp_path):
  fn = image_files._ReadFile()  # pylint: disable=protected-access
  (error,) = fn.process(match.FileRef(str(tmp_path / 'gone.jpg'), 'gone', None))
  assert error.tag == elements.ERRORS_TAG and error.value.error_type == 'FileNotFoundError'


def test_truncated_gzip_stays_an_error_row(tmp_path):
  path = _tfrecord(tmp_path / 'a.tfrecord.gz', _records(10), compress=True)
  path.write_bytes(path.read_bytes()[:-40])
  got = _read_ranges(path, [(0, None, None)])
  assert [k for k, _ in got[:-1]] == ['images'] * (len(got) - 1)
  assert got[-1][0] == elements.ERRORS_TAG and 'truncated' in got[-1][1].message  # a data error: no retry


def test_corrupt_gzip_stays_an_error_row(tmp_path):
  path = _tfrecord(tmp_path / 'a.tfrecord.gz', _records(10), compress=True)
  data = bytearray(path.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = b'\xff' * 64
  path.write_bytes(bytes(data))
  got = _read_ranges(path, [(0, None, None)])
  assert retry.UNREAD_TAG not in [k for k, _ in got]
  assert got[-1][0] == outcomes.STOPPED_TAG and 'reading stopped' in got[-1][1].message, got[-1]


# What the job makes of unread inputs, and the launcher's peek.

def test_unread_inputs_make_the_summary_unaccounted():
  from transforms.output import tally  # pylint: disable=import-outside-toplevel
  counts = {tally.READ: 3, tally.ROWS: 2, 'errors/read': 1}
  assert tally.accounting(counts)['accounted'] and 'unread' not in tally.accounting(counts)
  marker = {'records': 0, 'rows': 0, 'errors_by_stage': {},
            'unread': ['gs://b/y.tar#after_member=k1.txt', 'gs://b/x.tfrecord#bytes=1048576-2097152']}
  counts.update(pair for pair in tally.marker_counts(marker) if pair[1])
  summary = tally.accounting(counts)
  assert summary['accounted'] is False
  assert summary['unread'] == ['gs://b/x.tfrecord#bytes=1048576-2097152', 'gs://b/y.tar#after_member=k1.txt']
  assert (summary['records_read'], summary['rows_written'], summary['errors']) == (3, 2, 1)


@pytest.mark.parametrize('where', ['first_file', 'head', 'sample'])
def test_launcher_peek_failures_are_input_errors(tmp_path, monkeypatch, where):
  from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
  from transforms.read import plan  # pylint: disable=import-outside-toplevel
  path = _tfrecord(tmp_path / 'a.tfrecord', _records(2))

  def fail(*args, **kwargs):
    raise exceptions.ServiceUnavailable('storage is down')
  if where == 'first_file':
    monkeypatch.setattr(match, 'first_file', fail)
  elif where == 'head':
    monkeypatch.setattr(plan, '_head', fail)
  else:
    monkeypatch.setattr(tfrecord_shards, 'sample', fail)
  with pytest.raises(plan.InputError, match='storage is down'):
    plan.plan_inputs([str(path)], 'tfrecord' if where == 'head' else 'auto',
                     passthrough_keys=[('x', None)] if where == 'sample' else ())
