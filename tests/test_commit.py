"""The commit step is idempotent: killed after any one of its file operations and run again, on local disk
and on gs:// (the GCS emulator), it leaves exactly what an uninterrupted commit leaves.

The output is laid out by hand: this run's committed units A and B (markers and parts), a unit C an earlier
run committed (a --resume kept it), an orphan part of A from a failed attempt, a marker and part of a unit D
no longer planned, a part being written when a worker died, an earlier run's staging (carried: deleted) and
another run's (not carried: it must stay), tf.Transform's scratch folder, a stale summary.json and this run's
lease.
"""
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems

from tests import gcs
from transforms.output import commit, files, lease
from transforms.output.layout import Layout

RUN, EARLIER, OTHER = 'run1', 'old0', 'other'
SCHEMA = pa.schema([('id', pa.string())])
SCHEMAS = {'predictions': SCHEMA, 'errors': SCHEMA}
# unit key -> (predictions ids, error ids); A and B by this run, C by an earlier one, D no longer planned
UNITS = {'a': (['a1', 'a2'], ['a3']), 'b': (['b1', 'b2'], []), 'c': (['c1'], []), 'd': (['d1'], [])}
KEPT = ('a', 'b', 'c')
TALLY = {'records_read': 6, 'rows_written': 5, 'errors/decode': 1}


def _marker(key):
  rows, errors = UNITS[key]
  parts = {'predictions': f'part-{key}-1.parquet'}
  if errors:
    parts['errors'] = f'part-{key}-1.parquet'
  return {'unit': key, 'key': key, 'fingerprint': key, 'run': RUN, 'records': len(rows) + len(errors),
          'rows': len(rows), 'errors_by_stage': {'decode': len(errors)} if errors else {}, 'unread': [],
          'parts': parts, 'attempt': '1'}


class Died(Exception):
  """The commit's worker died here."""


def _parquet(path: str, ids) -> None:
  buffer = io.BytesIO()
  pq.write_table(pa.table({'id': list(ids)}, schema=SCHEMA), buffer)
  with FileSystems.create(path) as f:
    f.write(buffer.getvalue())


def _stage(out: str) -> None:
  for key, (rows, errors) in UNITS.items():
    marker = _marker(key)
    files.write_json(f'{out}/_units/{key}-1.json', marker)
    _parquet(f'{out}/predictions/{marker["parts"]["predictions"]}', rows)
    if errors:
      _parquet(f'{out}/errors/{marker["parts"]["errors"]}', errors)
  _parquet(f'{out}/predictions/part-a-0.parquet', ['a1'])  # a failed attempt's part
  files.write_json(f'{out}/_units/a-0.json', dict(_marker('a'), attempt='0'))  # and its marker
  _parquet(f'{out}/errors/_inprogress-part-b-2.parquet', ['x'])  # being written when its worker died
  files.write_text(f'{out}/_units/d.json.1a2b3c4d.tmp', '{"cut')  # a marker being written then
  files.write_text(f'{out}/_staging/{EARLIER}/predictions/left-over', 'analysis scratch')
  _parquet(f'{out}/_staging/{OTHER}/predictions/part-{OTHER}-00000-of-00001.parquet', ['q'])
  files.write_text(f'{out}/tft_tmp-123/scratch', 'tf.Transform')
  files.write_json(f'{out}/summary.json', {'stale': True})
  files.write_json(f'{out}/job.json', {'job': 1})


def _state(out: str) -> dict:
  """Every file under the output, and the ids each dataset holds."""
  paths = sorted(p[len(out) + 1:] for p in files.list_files(out + '/**') if not p.endswith('/'))
  ids = {}
  for name in SCHEMAS:
    found = files.list_files(f'{out}/{name}/*.parquet')
    ids[name] = sorted(i for p in found for i in _read_ids(p))
  return {'files': paths, 'ids': ids, 'summary': files.read_json(f'{out}/summary.json')}


def _read_ids(path: str):
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return pq.read_table(io.BytesIO(f.read()))['id'].to_pylist()


def _commit(out: str, tally=None) -> None:
  layout = Layout(out, RUN, (EARLIER, RUN))
  list(commit.Commit(layout, SCHEMAS, [f'{out}/tft_tmp-123']).process(
      None, tally or TALLY, [_marker(k) for k in KEPT[:2]], [_marker(k) for k in KEPT[2:]]))


def _inject(monkeypatch, die_at: int) -> list:
  """Makes the die_at-th file operation of the commit raise Died; a move is two operations on GCS (copy, then
  delete the source), and is made so here on both filesystems, so that a death between them is tried."""
  ops = []

  def tick():
    ops.append(1)
    if len(ops) == die_at:
      raise Died(die_at)

  def wrap(fn):
    def wrapped(*args, **kwargs):
      tick()
      return fn(*args, **kwargs)
    return wrapped

  def move(source, destination):
    tick()
    parent = destination.rsplit('/', 1)[0]
    if '://' not in destination:
      FileSystems.mkdirs(parent) if not FileSystems.exists(parent) else None
    FileSystems.copy([source], [destination])
    tick()
    FileSystems.delete([source])

  for name in ('delete_files', 'delete_tree', 'write_json'):
    monkeypatch.setattr(files, name, wrap(getattr(files, name)))
  monkeypatch.setattr(files, 'move', move)
  monkeypatch.setattr(lease, 'release', wrap(lease.release))
  monkeypatch.setattr(lease, 'seal', wrap(lease.seal))
  return ops


def _check_every_death(out_of, monkeypatch) -> int:
  clean_out = out_of('clean')
  _stage(clean_out)
  lease.acquire(clean_out, RUN, False)
  _commit(clean_out)
  clean = _state(clean_out)
  assert clean['ids'] == {'predictions': ['a1', 'a2', 'b1', 'b2', 'c1'], 'errors': ['a3']}
  assert set(clean['files']) == {'errors/part-a-1.parquet', 'job.json', 'predictions/part-a-1.parquet',
                                 'predictions/part-b-1.parquet', 'predictions/part-c-1.parquet', '_units/a-1.json',
                                 '_units/b-1.json', '_units/c-1.json', 'summary.json', 'manifest.json',
                                 f'_staging/{OTHER}/predictions/part-{OTHER}-00000-of-00001.parquet'}
  assert clean['summary']['rows_written'] == 5 and clean['summary']['errors'] == 1
  assert files.read_json(f'{clean_out}/manifest.json') == {
      'predictions': ['part-a-1.parquet', 'part-b-1.parquet', 'part-c-1.parquet'], 'errors': ['part-a-1.parquet']}
  assert clean['summary']['manifest'] == {'file': 'manifest.json', 'parts': {'predictions': 3, 'errors': 1}}

  die_at = 0
  while True:
    die_at += 1
    out = out_of(f'die{die_at}')
    _stage(out)
    lease.acquire(out, RUN, False)
    with monkeypatch.context() as m:
      ops = _inject(m, die_at)
      try:
        _commit(out)
        finished = True
      except Died:
        finished = False
    if finished:
      assert _state(out) == clean
      return die_at - 1
    assert files.read_json(f'{out}/summary.json') is None or len(ops) == die_at  # deleted first, written last
    _commit(out)  # the runner's retry
    assert _state(out) == clean, f'after dying at operation {die_at}'
    assert lease.release(out, RUN) is False  # released by the retry
    _commit(out)  # and once more: a retry of a commit that had finished changes nothing
    assert _state(out) == clean


def test_commit_killed_at_each_step_then_retried_on_local_disk(tmp_path, monkeypatch):
  operations = _check_every_death(lambda name: str(tmp_path / name), monkeypatch)
  assert operations >= 8  # summary, orphans in 2 folders, markers, 2 scratch folders, summary, lease


@pytest.mark.usefixtures('gcs_emulator')
def test_commit_killed_at_each_step_then_retried_on_gcs(monkeypatch):
  bucket = gcs.new_bucket('commit')
  operations = _check_every_death(lambda name: f'gs://{bucket}/{name}', monkeypatch)
  assert operations >= 8


@pytest.mark.parametrize('broken, message', [
    ('tally', 'the job counted 6 rows but its units hold 5'),
    ('part', r'committed part\(s\) are missing, e.g. part-b-1.parquet'),
])
def test_units_that_do_not_match_the_tally_change_nothing(tmp_path, broken, message):
  out = str(tmp_path / 'out')
  _stage(out)
  if broken == 'part':
    files.delete_files([f'{out}/predictions/part-b-1.parquet'])
  lease.acquire(out, RUN, False)
  before = sorted(files.list_files(out + '/**'))
  with pytest.raises(commit.CommitError, match=message):
    _commit(out, dict(TALLY, rows_written=6) if broken == 'tally' else TALLY)
  assert sorted(files.list_files(out + '/**')) == [p for p in before if not p.endswith('summary.json')]
