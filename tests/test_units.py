"""Read units are the unit of commit: each row is written once, into its unit's part; a unit that does not
arrive whole fails its bundle; --resume reads only the units not committed (fast, in-process versions of
tests/test_resume.py)."""
import json
import shutil

import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems

from tests import datagen
from transforms import elements
from transforms import format as format_stage
from transforms.output import lease, markers, write_units
from transforms.output.layout import Layout
from transforms.output.schema import ERROR_SCHEMA, prediction_schema
from transforms.read import image_units, match
from transforms.read.units import unit_key

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'both', '--labels_file', str(datagen.LABELS),
       '--files_per_unit', '2']
IN_PROCESS = ['--direct_num_workers', '1', '--direct_running_mode', 'in_memory']  # so that a test sees the writes


@pytest.fixture(scope='module', name='photos')
def photos_fixture(tmp_path_factory):
  directory = tmp_path_factory.mktemp('photos')
  for path in datagen.photo_paths():
    shutil.copy(path, directory / path.name)
  (directory / 'broken.jpg').write_bytes(b'not an image')
  return directory


def test_a_run_writes_each_row_once(photos, tmp_path, run_job, monkeypatch):
  written = {}
  create = FileSystems.create

  class Counted:
    """A file the job writes, counting its bytes."""

    def __init__(self, path, f):
      self._path, self._f = path, f

    def write(self, data):
      written[self._path] = written.get(self._path, 0) + len(data)
      return self._f.write(data)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return self._f.__exit__(*exc)

    def __getattr__(self, name):
      return getattr(self._f, name)

  def counted(path, *args, **kwargs):  # every Parquet byte the job writes, wherever it goes
    f = create(path, *args, **kwargs)
    return Counted(path, f) if '.parquet' in path else f
  monkeypatch.setattr(FileSystems, 'create', staticmethod(counted))
  result = run_job(tmp_path / 'out', ['--input', f'{photos}/*'] + JOB, IN_PROCESS)
  assert result.summary['accounted'] and result.summary['rows_written'] == 6 and result.summary['errors'] == 1
  final = {p: p.stat().st_size for name in ('predictions', 'errors') for p in (tmp_path / 'out' / name).iterdir()}
  parquet = [p for p in (tmp_path / 'out').rglob('*.parquet')]
  assert sorted(parquet) == sorted(final)  # no copy anywhere else (no checkpoint, no staging)
  assert sum(written.values()) == sum(final.values())  # and nothing written that is not in them
  assert len(written) == len(final)  # each file written once: every row once


def test_resume_reads_only_the_units_not_committed(photos, tmp_path, run_job):
  out = tmp_path / 'out'
  clean = run_job(out, ['--input', f'{photos}/*'] + JOB)
  markers = sorted((out / '_units').glob('*.json'))
  # --files_per_unit 2: the 7 files in runs cut where their paths say
  assert len(markers) == len(list(image_units.cut(match.expand(f'{photos}/*'), 2)))
  lost = json.loads(markers[0].read_text())  # as if the job died before this unit's marker
  markers[0].unlink()
  (out / 'summary.json').unlink()
  resumed = run_job(out, ['--input', f'{photos}/*', '--resume'] + JOB)
  assert resumed.summary['resumed'] == {'skipped_units': len(markers) - 1, 'skipped_records': 7 - lost['records'],
                                        'redone_units': 1, 'redone_records': lost['records']}
  assert sum(resumed.summary['records_read_by_worker']) == lost['records']  # Beam's count of records read
  for key in ('records_read', 'rows_written', 'errors', 'errors_by_stage', 'accounted', 'duplicate_ids'):
    assert resumed.summary[key] == clean.summary[key], key
  assert resumed.predictions.sort_by('id').to_pylist() == clean.predictions.sort_by('id').to_pylist()
  assert resumed.errors.to_pylist() == clean.errors.to_pylist()
  parts = {p.name for name in ('predictions', 'errors') for p in (out / name).iterdir()}
  named = {part for m in (out / '_units').glob('*.json') for part in json.loads(m.read_text())['parts'].values()}
  assert parts - {'part-empty.parquet'} == named  # the lost unit's earlier part, an orphan, is gone


def test_a_unit_not_whole_at_the_end_of_its_bundle_fails_the_bundle(tmp_path):
  schemas = {'predictions': prediction_schema(False, False, False), 'errors': ERROR_SCHEMA}
  lease.acquire(str(tmp_path), 'run', False)
  writer = write_units.WriteUnits(Layout(str(tmp_path), 'run'), schemas)
  writer.start_bundle()
  error = elements.ErrorRecord('a', 'a.jpg', elements.DECODE, 'DecodeError', 'bad', 'u1')
  assert list(writer.process((format_stage.ERRORS, 'u1', format_stage.error_row(error)))) == []
  assert list(writer.process((format_stage.END, 'u1', elements.UnitEnd('u1', 2)))) == []  # one of two
  with pytest.raises(write_units.UnitIncomplete, match='1 read unit'):
    writer.finish_bundle()
  assert [p.name for p in tmp_path.rglob('*') if p.is_file()] == [lease.LEASE_FILE]  # nothing of it committed, nor left
  writer.start_bundle()
  end = elements.UnitEnd('u2', 1, (), 'f')
  list(writer.process((format_stage.END, 'u2', end)))
  (marker,) = writer.process((format_stage.ERRORS, 'u2', format_stage.error_row(error)))
  assert marker['records'] == 1 and marker['errors_by_stage'] == {'decode': 1} and marker['rows'] == 0
  assert pq.read_table(str(tmp_path / 'errors')).num_rows == 1 and (tmp_path / '_units').is_dir()
  writer.finish_bundle()


def test_a_committed_unit_is_skipped_only_while_it_still_holds_what_its_input_does(tmp_path):
  layout = Layout(str(tmp_path), 'run')
  lease.acquire(layout.output, layout.run_id, False)
  schemas = {'predictions': prediction_schema(False, False, False), 'errors': ERROR_SCHEMA}
  row = {'id': 'a', 'source': 'a.jpg', 'width': 1, 'height': 1, 'model': 'm'}

  def commit(unit, unread=()):
    end = elements.UnitEnd(unit, 1, unread, 'f1')
    return markers.commit_unit(layout, unit_key(unit), end, {'predictions': [row], 'errors': []}, schemas)
  good = commit('good')
  assert markers.still_committed(layout, layout.marker(good['key'], good['attempt']), 'f1') == good
  assert markers.still_committed(layout, layout.marker(good['key'], good['attempt']), 'f2') is None  # its input changed
  cut = commit('cut', ('x.tar#after_member=a.jpg',))
  assert markers.still_committed(layout, layout.marker(cut['key'], cut['attempt']), 'f1') is None  # storage may give it now
  lost = commit('lost')
  (tmp_path / 'predictions' / lost['parts']['predictions']).unlink()
  assert markers.still_committed(layout, layout.marker(lost['key'], lost['attempt']), 'f1') is None
  (tmp_path / '_units' / f'{good["key"]}-{good["attempt"]}.json').write_text('{"cut')
  assert markers.still_committed(layout, layout.marker(good['key'], good['attempt']), 'f1') is None  # a damaged marker


def test_a_unit_is_written_as_its_rows_arrive_a_row_group_at_a_time(tmp_path):
  layout = Layout(str(tmp_path), 'run')
  lease.acquire(layout.output, layout.run_id, False)
  schemas = {'predictions': prediction_schema(False, False, False), 'errors': ERROR_SCHEMA}
  rows = 2 * markers.ROW_GROUP_ROWS + 5
  writer = write_units.WriteUnits(layout, schemas)
  writer.start_bundle()
  for i in range(rows):
    row = {'id': f'{i:05d}', 'source': f'{i}.jpg', 'width': 1, 'height': 1, 'model': 'm'}
    assert list(writer.process((format_stage.PREDICTIONS, 'u', row))) == []
  (temp,) = (tmp_path / 'predictions').glob('_inprogress-*')  # already on disk, beside its place
  assert temp.stat().st_size > 0  # its first two row groups are out: the rows are not held until the end
  outputs = list(writer.process((format_stage.END, 'u', elements.UnitEnd('u', rows, (), 'f'))))
  marker = outputs[0]
  part = pq.ParquetFile(tmp_path / 'predictions' / marker['parts']['predictions'])
  assert part.metadata.num_rows == rows == marker['rows'] and part.metadata.num_row_groups == 3
  assert part.read().column('id').to_pylist() == [f'{i:05d}' for i in range(rows)]
  assert not list((tmp_path / 'predictions').glob('_inprogress-*'))
  writer.finish_bundle()


def test_a_planned_image_file_the_reader_gives_nothing_for_is_an_error_row():
  """The unit's count is its planned files, not what its reader yielded: a reader that skips one cannot make the
  unit whole."""
  import apache_beam as beam  # pylint: disable=import-outside-toplevel
  from transforms.read import units  # pylint: disable=import-outside-toplevel

  class Skips(beam.DoFn):
    def prepare(self, item, window):
      return None

    def process(self, item, prepared=None):
      if item.id != 'b':
        yield elements.EncodedImage(elements.ImageRef(item.id, item.path), b'x')

  read = units.ReadUnits({'images': Skips()}, reads=1)
  read.start_bundle()
  unit = units.to_unit('images@/a.jpg', 'images', [match.FileRef('/a.jpg', 'a', 1), match.FileRef('/b.jpg', 'b', 1)])
  out = list(read.process(unit))
  assert [type(o).__name__ for o in out] == ['EncodedImage', 'ErrorRecord', 'UnitEnd']
  assert (out[1].id, out[1].error_type) == ('b', 'NothingRead') and out[2].records == 2
