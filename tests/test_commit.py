"""The commit step is idempotent: killed after any one of its file operations and run again, on local disk
and on gs:// (the GCS emulator), it leaves exactly what an uninterrupted commit leaves.

The output is staged by hand: this run's shards under _staging/RUN/, an earlier run's committed shard and
its staging and checkpoints (a --resume carries that run), another run's staging (not carried: it must stay),
tf.Transform's scratch folder, a stale summary.json and this run's lease.
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
TALLY = {'records_read': 5, 'rows_written': 4, 'errors/decode': 1}
ROWS = {'predictions': [['a', 'b'], ['c', 'd']], 'errors': [['e']]}  # ids per shard of this run
SCHEMA = pa.schema([('id', pa.string())])


class Died(Exception):
  """The commit's worker died here."""


def _parquet(path: str, ids) -> None:
  buffer = io.BytesIO()
  pq.write_table(pa.table({'id': list(ids)}, schema=SCHEMA), buffer)
  with FileSystems.create(path) as f:
    f.write(buffer.getvalue())


def _stage(out: str) -> None:
  for name, shards in ROWS.items():
    for i, ids in enumerate(shards):
      _parquet(f'{out}/_staging/{RUN}/{name}/part-{RUN}-{i:05d}-of-{len(shards):05d}.parquet', ids)
  files.write_text(f'{out}/_staging/{RUN}/predictions/.temp-beam-1/left-over', 'beam scratch')
  _parquet(f'{out}/_checkpoints/{RUN}/predictions/c-1.parquet', ['a'])
  _parquet(f'{out}/predictions/part-{EARLIER}-00000-of-00001.parquet', ['a', 'z'])  # carried, then replaced
  _parquet(f'{out}/_staging/{EARLIER}/errors/part-{EARLIER}-00000-of-00001.parquet', ['e'])
  _parquet(f'{out}/_checkpoints/{EARLIER}/predictions/c-2.parquet', ['b'])
  _parquet(f'{out}/_staging/{OTHER}/predictions/part-{OTHER}-00000-of-00001.parquet', ['q'])
  files.write_text(f'{out}/tft_tmp-123/scratch', 'tf.Transform')
  files.write_json(f'{out}/summary.json', {'stale': True})
  files.write_json(f'{out}/job.json', {'job': 1})


def _state(out: str) -> dict:
  """Every file under the output, and the ids each dataset holds."""
  paths = sorted(p[len(out) + 1:] for p in files.list_files(out + '/**') if not p.endswith('/'))
  ids = {}
  for name in ROWS:
    found = files.list_files(f'{out}/{name}/*.parquet')
    ids[name] = sorted(i for p in found for i in _read_ids(p))
  return {'files': paths, 'ids': ids, 'summary': files.read_json(f'{out}/summary.json')}


def _read_ids(path: str):
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return pq.read_table(io.BytesIO(f.read()))['id'].to_pylist()


def _commit(out: str) -> None:
  layout = Layout(out, RUN, (EARLIER, RUN))
  list(commit.Commit(layout, [f'{out}/tft_tmp-123']).process(None, TALLY))


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
  return ops


def _check_every_death(out_of, monkeypatch) -> int:
  clean_out = out_of('clean')
  _stage(clean_out)
  lease.acquire(clean_out, RUN, False)
  _commit(clean_out)
  clean = _state(clean_out)
  assert clean['ids'] == {'predictions': ['a', 'b', 'c', 'd'], 'errors': ['e']}
  assert set(clean['files']) == {'errors/part-run1-00000-of-00001.parquet', 'job.json',
                            'predictions/part-run1-00000-of-00002.parquet',
                            'predictions/part-run1-00001-of-00002.parquet',
                            'summary.json', f'_staging/{OTHER}/predictions/part-{OTHER}-00000-of-00001.parquet'}
  assert clean['summary']['rows_written'] == 4 and clean['summary']['errors'] == 1

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
  assert operations >= 10  # summary, earlier shard, 3 moves (copy + delete), 4 scratch folders, summary, lease


@pytest.mark.usefixtures('gcs_emulator')
def test_commit_killed_at_each_step_then_retried_on_gcs(monkeypatch):
  bucket = gcs.new_bucket('commit')
  operations = _check_every_death(lambda name: f'gs://{bucket}/{name}', monkeypatch)
  assert operations >= 10


def test_shards_that_do_not_match_the_tally_move_nothing(tmp_path):
  out = str(tmp_path / 'out')
  _stage(out)
  layout = Layout(out, RUN, (EARLIER,))
  with pytest.raises(commit.CommitError, match='counted 5 rows but its shards hold 4'):
    list(commit.Commit(layout).process(None, dict(TALLY, rows_written=5)))
  assert not files.list_files(f'{out}/predictions/part-{RUN}-*')
  assert len(files.list_files(f'{out}/_staging/{RUN}/predictions/*.parquet')) == 2
