"""The read window (transforms/read/window.py) and ReadUnits' reads ahead: reads that finish out of order, and
some that fail and are retried, still give each record once, in the unit's order, a unit after the other; the
window never holds more reads or bytes than its bounds; a file that keeps failing is reported unread."""
import random
import threading
import time

import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.utils.windowed_value import WindowedValue

from transforms import elements
from transforms.read import image_files, match, retry, units
from transforms.read.window import Fetch, Window

_REAL_OPEN = FileSystems.open


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
  monkeypatch.setattr(retry, 'BACKOFF_SECONDS', 0.0)


class _Tracker:
  def __init__(self):
    self.lock = threading.Lock()
    self.now = self.most = 0

  def __enter__(self):
    with self.lock:
      self.now += 1
      self.most = max(self.most, self.now)

  def __exit__(self, *exc):
    with self.lock:
      self.now -= 1


def test_results_come_in_the_order_added_within_both_bounds():
  rng = random.Random(1)
  tracker, sizes = _Tracker(), {}
  window = Window(reads=8, max_bytes=10_000)

  def read(i):
    with tracker:
      time.sleep(rng.random() * 0.01)  # finish out of order
      if i % 7 == 3:
        raise ConnectionResetError(f'read {i}')
      return i

  fetches = []
  for i in range(200):
    sizes[i] = rng.randint(100, 3000)
    fetches.append(window.add(Fetch(lambda i=i: read(i), sizes[i])))
    assert window.in_flight() <= 8
    assert window._bytes <= 10_000  # pylint: disable=protected-access
  got = []
  for i, fetch in enumerate(fetches):
    try:
      got.append(window.take(fetch))
    except ConnectionResetError as e:
      got.append(str(e))
    assert window.in_flight() <= 8 and window._bytes <= 10_000  # pylint: disable=protected-access
  window.close()
  assert got == [f'read {i}' if i % 7 == 3 else i for i in range(200)]
  assert 1 < tracker.most <= 8


def test_a_read_larger_than_the_byte_bound_still_runs_alone():
  window = Window(reads=4, max_bytes=100)
  small, big = window.add(Fetch(lambda: 'a', 10)), window.add(Fetch(lambda: 'b', 1000))
  assert window.full()  # the big one waits until the small one is taken
  assert window.take(small) == 'a' and window.in_flight() == 1 and not window.full()
  assert window.take(big) == 'b'
  window.close()


def test_dropped_reads_free_their_room():
  window = Window(reads=2, max_bytes=1 << 20)
  gate = threading.Event()
  first = window.add(Fetch(gate.wait, 1))
  second = window.add(Fetch(lambda: 2, 1))
  third = window.add(Fetch(lambda: 3, 1))
  assert window.full()
  window.drop(third)  # never started
  gate.set()
  window.drop(first)  # started: waited for, then forgotten
  assert window.take(second) == 2 and window.in_flight() == 0
  window.close()


def _files(tmp_path, n):
  refs = []
  for i in range(n):
    path = tmp_path / f'f{i:03d}.jpg'
    path.write_bytes(b'%03d' % i * (100 + i))
    refs.append(match.FileRef(str(path), f'f{i:03d}', path.stat().st_size))
  return refs


def _slow_and_flaky(monkeypatch, failing_once, failing_always, seed=0):
  """FileSystems.open that waits a random while (reads finish out of order), fails once for some paths and always
  for others."""
  rng, lock, failed = random.Random(seed), threading.Lock(), set()

  def fake_open(path, *args, **kwargs):
    with lock:
      delay = rng.random() * 0.02
    time.sleep(delay)
    if path in failing_always:
      raise ConnectionResetError(f'{path}: reset, always')
    with lock:
      if path in failing_once and path not in failed:
        failed.add(path)
        raise ConnectionResetError(f'{path}: reset, once')
    return _REAL_OPEN(path, *args, **kwargs)
  monkeypatch.setattr(FileSystems, 'open', fake_open)
  return failed


def _read_units(unit_list, reads):
  fn = units.ReadUnits({'jpeg': image_files.reader()}, reads=reads, max_bytes=4000)
  fn.setup()
  fn.start_bundle()
  out = [x for unit in unit_list for x in fn.process(unit)]
  out += [x.value for x in fn.finish_bundle()]
  fn.teardown()
  return out


@pytest.mark.parametrize('reads', [1, 3, 16])
def test_units_keep_their_order_and_give_each_record_once(tmp_path, monkeypatch, reads):
  refs = _files(tmp_path, 60)
  unit_list = [units.to_unit(f'images/{u:05d}-of-00006', 'jpeg', refs[u * 10:(u + 1) * 10]) for u in range(6)]
  failing_once = {r.path for r in refs[::4]}
  failing_always = {refs[17].path}
  failed = _slow_and_flaky(monkeypatch, failing_once, failing_always, seed=reads)
  out = _read_units(unit_list, reads)
  assert failed == failing_once  # each failed, and was read again
  expected = []
  for unit in unit_list:
    for ref in unit.items:
      if ref.path not in failing_always:
        expected.append((unit.name, ref.id, open(ref.path, 'rb').read()))  # pylint: disable=consider-using-with
    expected.append((unit.name, 'end'))
  got = [(x.unit, 'end') if isinstance(x, elements.UnitEnd) else (x.ref.unit, x.ref.id, x.data) for x in out]
  assert got == expected
  ends = [x for x in out if isinstance(x, elements.UnitEnd)]
  assert [e.records for e in ends] == [10, 9, 10, 10, 10, 10]
  assert ends[1].unread == (refs[17].path,)


def test_finish_bundle_gives_windowed_values(tmp_path):
  refs = _files(tmp_path, 3)
  fn = units.ReadUnits({'jpeg': image_files.reader()}, reads=8, max_bytes=1 << 20)
  fn.setup()
  fn.start_bundle()
  assert not list(fn.process(units.to_unit('images/00000-of-00001', 'jpeg', refs)))  # the window has room: held
  left = list(fn.finish_bundle())
  assert all(isinstance(x, WindowedValue) for x in left) and len(left) == 4


def test_a_prefetched_file_reads_what_the_file_holds_wherever_it_seeks(tmp_path, monkeypatch):
  from transforms.read import read_ahead, storage  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(read_ahead, 'CHUNK_BYTES', 1000)
  path = tmp_path / 'blob'
  content = bytes(random.Random(2).randrange(256) for _ in range(10_000))
  path.write_bytes(content)
  window = Window(reads=4, max_bytes=2500)
  f = read_ahead.PrefetchedFile(storage.Storage(), window, str(path), 1500, 7000)
  assert window.in_flight() == 2 and window.full()  # 1500-2500 and 2500-3500 in flight, the rest waiting
  rng, pos = random.Random(3), 1500
  for _ in range(300):
    if rng.random() < 0.1:
      pos = rng.randrange(0, 10_500)  # back, far ahead, past the end: read directly
      f.seek(pos)
    data = f.read(rng.randrange(1, 700))
    assert data == content[pos:pos + len(data)] and (data or pos >= len(content))
    pos += len(data)
  assert f.read(-1) == content[pos:]
  f.close()
  assert window.in_flight() == 0 and not window.full()
  window.close()


def test_a_failed_chunk_raises_where_it_is_read(tmp_path, monkeypatch):
  from transforms.read import read_ahead, storage  # pylint: disable=import-outside-toplevel
  monkeypatch.setattr(read_ahead, 'CHUNK_BYTES', 1000)
  path = tmp_path / 'blob'
  path.write_bytes(b'x' * 5000)
  store = storage.Storage()
  real = store.read_range

  def flaky(p, start, end):
    if start == 2000:
      raise ConnectionResetError('cut')
    return real(p, start, end)
  monkeypatch.setattr(store, 'read_range', flaky)
  window = Window(reads=4, max_bytes=1 << 20)
  f = read_ahead.PrefetchedFile(store, window, str(path), 0, 5000)
  assert len(f.read(1000)) == 1000 and len(f.read(1000)) == 1000
  with pytest.raises(ConnectionResetError):
    f.read(10)
  f.close()
  assert window.in_flight() == 0
  window.close()
