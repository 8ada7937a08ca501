"""One run per output at a time: the claim takes OUT/_lease.json atomically, on local disk and on gs://.

gs:// runs against fake-gcs-server, which refuses a create with if_generation_match=0 over an existing object
(412) as GCS does; gcp-storage-emulator, the suite's other emulator, ignores preconditions.
"""
import datetime
import json
import logging
import os
import pathlib
import subprocess
import sys
import threading
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from tests import gcs
from transforms import gcs_auth
from transforms import elements
from transforms.output import claim, commit, files, keep_lease, lease, lease_store, markers
from transforms.output.layout import Layout
from transforms.output.schema import ERROR_SCHEMA, prediction_schema

JOB = {'input': 'photos/*', 'model': 'm', claim.MODEL_DIGEST: 'abc'}
ROUNDS = 20


@pytest.fixture(scope='session')
def fake_gcs():
  with gcs.fake_gcs_server() as host:
    yield host


@pytest.fixture(name='gcs_root')
def gcs_root_fixture(fake_gcs, monkeypatch):
  """A fresh bucket on fake-gcs-server; gs:// paths of this test go there."""
  monkeypatch.setenv('STORAGE_EMULATOR_HOST', fake_gcs)
  monkeypatch.setattr(lease_store.Gcs, '_client', None)  # pylint: disable=protected-access  # built for this endpoint
  gcs_auth.apply(PipelineOptions(['--no_auth']))  # Beam's filesystem: anonymous, to the same endpoint
  # Beam's GCS filesystem writes job.json with batch requests, which fake-gcs-server does not serve: on gs://
  # the claim here is its lease part only (the rest of the claim on gs:// runs in test_inputs_end_to_end.py).
  monkeypatch.setattr(claim, '_claim', lambda output, mode, job: {})
  return f'gs://{gcs.new_bucket("lease")}'


@pytest.fixture(name='local_root')
def local_root_fixture(tmp_path):
  return str(tmp_path)


def _race(output: str, mode: str, holders=()) -> list:
  """len(holders) or 2 claims on one output at once (threads behind a barrier): [(run_id, error or None)]."""
  runs = list(holders) or ['first', 'second']
  barrier, results = threading.Barrier(len(runs)), []

  def attempt(run_id):
    barrier.wait()
    try:
      claim.claim(output, mode, JOB, run_id)
      results.append((run_id, None))
    except claim.OutputError as e:
      results.append((run_id, str(e)))

  threads = [threading.Thread(target=attempt, args=(r,)) for r in runs]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=120)
  return results


def _one_winner(results) -> str:
  winners = [run_id for run_id, error in results if error is None]
  assert len(winners) == 1, results
  for run_id, error in results:
    if error is not None:
      assert f'is in use by run {winners[0]} on host ' in error and 'last heartbeat' in error, error
  return winners[0]


def _holder(output: str) -> dict:
  return files.read_json(lease.path_of(output))


def _make_stale(output: str, run_id: str, minutes: float = 11) -> None:
  """A lease last written `minutes` ago, by its heartbeat and (locally) by the file's mtime, which is what the
  staleness is judged by; GCS sets an object's `updated` itself: on gs:// the lease is only `minutes` old by its
  heartbeat (the tests that need it stale there wait for it: _stale_soon)."""
  record = lease.new_record(run_id)
  old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
  record['heartbeat'] = old.strftime('%Y-%m-%dT%H:%M:%SZ')
  path = lease.path_of(output)
  if output.startswith('gs://'):  # not through Beam: its renames are batch requests fake-gcs-server lacks
    lease_store.Gcs._blob(path).upload_from_string(json.dumps(record))  # pylint: disable=protected-access
  else:
    files.write_text(path, json.dumps(record))
    os.utime(path, (old.timestamp(), old.timestamp()))


def _stale_soon(root: str, monkeypatch) -> float:
  """Seconds to wait after _make_stale for the lease to be stale by the storage's clock (gs://: a bound of 5 s,
  longer than a takeover race takes)."""
  if not root.startswith('gs://'):
    return 0
  monkeypatch.setattr(lease, 'STALE_AFTER_SECONDS', 5)
  return 6


@pytest.fixture(params=['local', pytest.param('gcs', marks=pytest.mark.full)], name='root')
def root_fixture(request):
  return request.getfixturevalue(f'{request.param}_root')


def test_two_launches_at_once_one_gets_the_lease(root):
  for i in range(ROUNDS):
    output = f'{root}/race{i}'
    winner = _one_winner(_race(output, claim.NEW))
    assert _holder(output)['run_id'] == winner
    if '://' not in root:
      assert files.read_json(f'{output}/job.json') == JOB


def test_resume_while_a_run_holds_the_output_is_refused(root):
  for i in range(ROUNDS):
    output = f'{root}/held{i}'
    claim.claim(output, claim.NEW, JOB, 'holder')
    results = _race(output, claim.RESUME, ['resume1', 'resume2'])
    assert all(error and 'is in use by run holder on host ' in error for _, error in results), results
    assert 'it may still be running' in results[0][1]
    assert _holder(output)['run_id'] == 'holder'


def test_a_stale_lease_is_taken_over_by_one_resume(root, caplog, monkeypatch):
  output = f'{root}/stale'
  wait = _stale_soon(root, monkeypatch)
  claim.claim(output, claim.NEW, JOB, 'dead')
  _make_stale(output, 'dead')
  time.sleep(wait)
  with pytest.raises(claim.OutputError, match=r'is in use by run dead .* has died or not sent a heartbeat for over \d+ min'):
    claim.claim(output, claim.NEW, JOB, 'plain')  # a plain launch does not take over
  for i in range(ROUNDS if not wait else 4):
    _make_stale(output, f'dead{i}')
    time.sleep(wait)
    with caplog.at_level(logging.WARNING):
      winner = _one_winner(_race(output, claim.RESUME, [f'a{i}', f'b{i}']))
    assert _holder(output)['run_id'] == winner
    assert f'took over the lease on {output} from run dead{i}' in caplog.text


def test_heartbeat_and_release_only_by_the_holder(root):
  output = f'{root}/beat'
  claim.claim(output, claim.NEW, JOB, 'mine')
  _make_stale(output, 'mine', minutes=5)
  assert lease.age_seconds(_holder(output)) > 200
  assert lease.beat(output, 'mine') and lease.age_seconds(_holder(output)) < 60
  assert not lease.beat(output, 'other') and not lease.release(output, 'other')
  assert lease.release(output, 'mine') and _holder(output) is None
  assert not lease.beat(output, 'mine') and _holder(output) is None  # a late beat does not bring it back
  claim.claim(output, claim.RESUME, JOB, 'next')  # free again
  assert _holder(output)['run_id'] == 'next'


def test_a_failed_claim_releases_the_lease(local_root):
  output = f'{local_root}/used'
  claim.claim(output, claim.NEW, JOB, 'first')
  lease.release(output, 'first')
  with pytest.raises(claim.OutputError, match='already holds a job'):
    claim.claim(output, claim.NEW, JOB, 'second')
  assert _holder(output) is None


def test_the_launchers_heartbeat_thread_keeps_the_lease_fresh(local_root):
  output = f'{local_root}/thread'
  claim.claim(output, claim.NEW, JOB, 'mine')
  _make_stale(output, 'mine', minutes=5)
  with keep_lease.Heartbeat(output, 'mine', seconds=0.05):
    deadline = time.monotonic() + 30
    while lease.age_seconds(_holder(output)) > 60:
      assert time.monotonic() < deadline, 'no heartbeat'
      time.sleep(0.05)
  assert _holder(output)['run_id'] == 'mine'
  assert lease.release(output, 'mine')


def test_many_beaters_share_one_lease(root):
  """The launcher and every worker process beat one lease at once: none of them takes it for lost."""
  output = f'{root}/many'
  claim.claim(output, claim.NEW, JOB, 'mine')
  beaters = 8
  for fresh in (0, lease.HEARTBEAT_SECONDS / 2):
    _make_stale(output, 'mine', minutes=5)
    barrier, results = threading.Barrier(beaters), []

    def beat(fresh_seconds=fresh):
      barrier.wait()
      results.append(lease.beat(output, 'mine', fresh_seconds))

    threads = [threading.Thread(target=beat) for _ in range(beaters)]
    for t in threads:
      t.start()
    for t in threads:
      t.join(timeout=120)
    assert results == [True] * beaters
    assert _holder(output)['run_id'] == 'mine' and lease.age_seconds(_holder(output)) < 60
  assert lease.release(output, 'mine')
  assert not lease.beat(output, 'mine', lease.HEARTBEAT_SECONDS / 2)


def _nap(x):
  time.sleep(1.5)
  return x


def test_worker_processes_keep_the_lease_fresh_without_the_launcher(local_root):
  """A Flex Template launcher does not wait: the job's workers alone keep its lease from going stale."""
  output = f'{local_root}/workers'
  claim.claim(output, claim.NEW, JOB, 'mine')
  _make_stale(output, 'mine', minutes=5)
  options = PipelineOptions(['--direct_num_workers=2', '--direct_running_mode=multi_processing'])
  with beam.Pipeline(options=options) as p:
    _ = (p | beam.Create(range(4)) | beam.Reshuffle()
         | beam.ParDo(keep_lease.KeepLease(output, 'mine', seconds=0.2)) | beam.Map(_nap))
  assert lease.age_seconds(_holder(output)) < 60, _holder(output)
  assert not [t for t in threading.enumerate() if t.name == f'lease-heartbeat {output}']  # not here: the workers
  assert lease.release(output, 'mine')


def test_a_lease_of_a_killed_launcher_on_this_host_is_taken_over_at_once(local_root):
  output = f'{local_root}/killed'
  proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True,
                        check=True)
  record = dict(lease.new_record('killed'), pid=int(proc.stdout))  # a process that has ended, on this host
  files.write_text(lease.path_of(output), json.dumps(record))
  with pytest.raises(claim.OutputError, match='is in use by run killed .* has died'):
    claim.claim(output, claim.NEW, JOB, 'plain')
  claim.claim(output, claim.RESUME, JOB, 'resumed')
  assert _holder(output)['run_id'] == 'resumed'


def test_staleness_is_judged_by_the_storages_clock_not_the_holders(local_root):
  """A holder whose clock runs 20 minutes slow stamps an old heartbeat on a lease it has just written."""
  output = f'{local_root}/skewed'
  record = lease.new_record('slow-clock')
  slow = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
  record.update(heartbeat=slow.strftime('%Y-%m-%dT%H:%M:%SZ'), host='elsewhere')
  files.write_text(lease.path_of(output), json.dumps(record))  # written now, by the filesystem's clock
  with pytest.raises(claim.OutputError, match='is in use by run slow-clock .* it may still be running'):
    claim.claim(output, claim.RESUME, JOB, 'resumed')


def test_a_holder_in_another_container_with_this_hostname_is_not_taken_for_dead(local_root):
  """Containers of one pod (or --net=host) share a hostname, not their pids: a pid we cannot see is not a death."""
  output = f'{local_root}/container'
  proc = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True,
                        check=True)
  record = dict(lease.new_record('elsewhere'), pid=int(proc.stdout), machine='another-boot/pid:[4026531836]')
  files.write_text(lease.path_of(output), json.dumps(record))
  with pytest.raises(claim.OutputError, match='is in use by run elsewhere .* it may still be running'):
    claim.claim(output, claim.RESUME, JOB, 'resumed')
  assert _holder(output)['run_id'] == 'elsewhere'


def test_a_run_writes_again_after_its_release_only_while_no_other_run_holds_the_output(root):
  """The launcher completes summary.json after the commit step released the lease: it takes the lease again
  for that, and leaves the output alone if a --resume took it meanwhile."""
  output = f'{root}/after'
  claim.claim(output, claim.NEW, JOB, 'first')
  with lease.retaken(output, 'first') as ours:  # still held: as it is
    assert ours and _holder(output)['run_id'] == 'first'
  assert lease.release(output, 'first')
  with lease.retaken(output, 'first') as ours:  # released: taken again for the writes, released after
    assert ours and _holder(output)['run_id'] == 'first'
    with pytest.raises(lease.Lost, match='commit of run first began'):  # sealed: not a worker's to write with
      lease.check_held(output, 'first', 'a unit')
  assert _holder(output) is None
  claim.claim(output, claim.RESUME, JOB, 'second')
  with lease.retaken(output, 'first') as ours:
    assert not ours
  assert _holder(output)['run_id'] == 'second'


def test_a_run_that_no_longer_holds_the_lease_is_told_so(root):
  output = f'{root}/fenced'
  claim.claim(output, claim.NEW, JOB, 'old')
  lease.check_held(output, 'old', 'a unit')
  assert lease.release(output, 'old')
  with pytest.raises(lease.Lost, match=r'^a unit not written: run old no longer holds the lease on .*released'):
    lease.check_held(output, 'old', 'a unit')
  claim.claim(output, claim.RESUME, JOB, 'new')
  with pytest.raises(lease.Lost, match='held by run new on host'):
    lease.check_held(output, 'old', 'a unit')


def _files_but_lease(output: str) -> dict:
  """path under output -> its bytes, but the lease."""
  root = pathlib.Path(output)
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*'))
          if p.is_file() and p.name != lease.LEASE_FILE}


def test_a_stopped_runs_job_writes_nothing_into_an_output_taken_over(local_root):
  """A job left running on a cluster after its launcher was stopped (lease released) or killed (its lease taken
  over by a --resume at once): its units and its commit step change nothing (tests/test_flink.py does it for real)."""
  output = f'{local_root}/taken'
  schemas = {'predictions': prediction_schema(False, False, False), 'errors': ERROR_SCHEMA}
  old = Layout(output, 'old')
  row = {'id': 'a', 'source': 'a.jpg', 'width': 1, 'height': 1, 'model': 'm'}

  def commit_unit(unit):
    return markers.commit_unit(old, unit, elements.UnitEnd(unit, 1, (), 'f'), {'predictions': [row], 'errors': []},
                               schemas)
  claim.claim(output, claim.NEW, JOB, 'old')
  first = commit_unit('u1')
  before = _files_but_lease(output)
  assert f'_units/u1-{first["attempt"]}.json' in before and len(before) == 3  # job.json, the unit's part, marker
  assert lease.release(output, 'old')  # the launcher was stopped
  with pytest.raises(lease.Lost, match='read unit u2 not written'):
    commit_unit('u2')
  claim.claim(output, claim.RESUME, JOB, 'new')  # a --resume took it over
  with pytest.raises(lease.Lost, match='read unit u2 not written: run old .* held by run new'):
    commit_unit('u2')
  with pytest.raises(lease.Lost, match='the commit not written'):
    list(commit.Commit(old, schemas).process(None, {}, [first], []))
  after = _files_but_lease(output)
  assert after == before and _holder(output)['run_id'] == 'new'


def test_an_attempt_of_the_same_run_lands_nothing_once_the_commit_began(local_root):
  """A failover's cancelled attempt, still running (its run id is the job's): it began its unit before the
  commit, and finishes it after the commit sealed the lease. Its part never goes into place, its marker is not
  written, and the output is what the commit left (tests/test_flink.py does it on a cluster)."""
  output = f'{local_root}/sealed'
  schemas = {'predictions': prediction_schema(False, False, False), 'errors': ERROR_SCHEMA}
  layout = Layout(output, 'run')
  row = {'id': 'a', 'source': 'a.jpg', 'width': 1, 'height': 1, 'model': 'm'}
  claim.claim(output, claim.NEW, JOB, 'run')
  late = markers.UnitParts(layout, 'u1', schemas)
  late.add('predictions', row, 'u1')  # the cancelled attempt, mid-unit
  kept = markers.commit_unit(layout, 'u1', elements.UnitEnd('u1', 1, (), 'f'), {'predictions': [row], 'errors': []},
                             schemas)  # the attempt the job kept
  tally = {'records_read': 1, 'rows_written': 1}
  summary = list(commit.Commit(layout, schemas).process(None, tally, [kept], []))
  assert summary and lease.holder(output) is None
  committed = _files_but_lease(output)
  lease.acquire(output, 'run', False)  # even were the lease still held, as between the seal and the release
  lease.seal(output, 'run')
  with pytest.raises(lease.Lost, match='the commit of run run began'):
    markers.UnitParts(layout, 'u2', schemas).add('predictions', row, 'u2')
  lease.release(output, 'run')
  with pytest.raises(lease.Lost, match='read unit u1 not written'):
    late.commit(elements.UnitEnd('u1', 1, (), 'f'))
  assert _files_but_lease(output) == committed
  manifest = json.loads((pathlib.Path(output) / 'manifest.json').read_text())
  assert manifest['predictions'] == [kept['parts']['predictions']]
