"""A bundle that fails part-way and is retried by the runner leaves no duplicate and loses nothing.

Beam's BundleBasedDirectRunner retries a failed bundle (up to four attempts), as Dataflow does; it runs
in this process, so a test can make the first attempt of one bundle fail after it has already emitted
or written some of its elements: in the read stage, the format stage, and right after a read unit's parts and
marker were written (the retried bundle writes that unit again, under another attempt).
"""
import inspect
import json
import shutil
import threading

import pytest

from tests import datagen
from transforms import format as format_stage
from transforms.output import markers
from transforms.read import image_files

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'both', '--labels_file', str(datagen.LABELS)]
RETRYING_RUNNER = ['--runner', 'BundleBasedDirectRunner']


class FailOnce:
  """Raises on the `nth` call of maybe_fail(), once; counts calls."""

  def __init__(self, nth: int):
    self.nth = nth
    self.calls = 0
    self.failed = False
    self._lock = threading.Lock()

  def maybe_fail(self) -> None:
    with self._lock:
      self.calls += 1
      fail = self.calls == self.nth and not self.failed
      self.failed = self.failed or fail
    if fail:
      raise RuntimeError('injected failure on the first attempt')

  def after(self, method):
    """The method, failing once after it has done its work (emitted its outputs, written its rows)."""
    if inspect.isgeneratorfunction(method):
      def wrapped(*args, **kwargs):
        yield from method(*args, **kwargs)
        self.maybe_fail()
    else:
      def wrapped(*args, **kwargs):
        result = method(*args, **kwargs)
        self.maybe_fail()
        return result
    return wrapped


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
  directory = tmp_path_factory.mktemp('photos')
  for path in datagen.photo_paths():
    shutil.copy(path, directory / path.name)
  datagen.make_jpegs(directory, 30, seed=7, size=(96, 72))
  (directory / 'broken.jpg').write_bytes(b'not an image')
  return directory


@pytest.fixture(scope='module')
def clean(photos, tmp_path_factory):
  from tests.conftest import run_job  # pylint: disable=import-outside-toplevel
  return run_job(tmp_path_factory.mktemp('clean') / 'out', ['--input', f'{photos}/*'] + JOB, RETRYING_RUNNER)


def _rows(table):
  return sorted((r['id'], r['source'], tuple(r['top_classes']), tuple(r['embedding'])) for r in table.to_pylist())


@pytest.mark.parametrize('stage', ['read', 'format', 'unit_commit'])
def test_retried_bundle_leaves_no_duplicate_and_loses_nothing(stage, photos, clean, tmp_path, run_job, monkeypatch):
  # pylint: disable=protected-access
  owner, method, nth = {
      'read': (image_files._ReadFile, 'process', 5),
      'format': (format_stage.FormatRows, 'process', 5),
      'unit_commit': (markers.UnitParts, 'commit', 1),  # after the unit's parts and marker are written
  }[stage]
  injected = FailOnce(nth)
  monkeypatch.setattr(owner, method, injected.after(getattr(owner, method)))
  result = run_job(tmp_path / 'out', ['--input', f'{photos}/*'] + JOB, RETRYING_RUNNER)
  assert injected.failed and injected.calls > injected.nth  # it failed part-way, and the bundle ran again
  ids = [r['id'] for r in result.predictions.to_pylist()]
  assert len(ids) == len(set(ids))
  assert _rows(result.predictions) == _rows(clean.predictions)
  assert result.errors.to_pylist() == clean.errors.to_pylist()
  for key in ('records_read', 'rows_written', 'errors', 'errors_by_stage', 'accounted'):
    assert result.summary[key] == clean.summary[key], key
  assert result.summary['accounted'] and result.summary['records_read'] == len(ids) + 1
  leftovers = [p for p in (tmp_path / 'out').rglob('*') if p.is_file()]
  assert {p.parent.name for p in leftovers} <= {'predictions', 'errors', 'out', '_units'}, leftovers
  named = {part for m in (tmp_path / 'out' / '_units').glob('*.json') for part in json.loads(m.read_text())['parts'].values()}
  parts = {p.name for p in leftovers if p.parent.name in ('predictions', 'errors') and p.name != 'part-empty.parquet'}
  assert parts == named  # no temp file, no part of a failed attempt left
