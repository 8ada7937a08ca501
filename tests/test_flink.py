"""The job on a real standalone Flink cluster of two TaskManagers equals the local runner's, row for row, and
stays exact when a TaskManager is killed mid-job.

templates/flink/flink.sh fetches Flink and Beam's job server (cached outside the project) and starts a
JobManager, two TaskManagers (two nodes' worth: each starts its own SDK workers) and the standing job server,
exactly as templates/flink/README.md tells users; the job is then launched with the flags that script prints,
as a user would (tests/flink.py).
"""
import contextlib
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import List

import numpy as np
import psutil
import pytest

from tests import checks, conftest, datagen, flink

pytestmark = pytest.mark.full

GENERATED = 1000
INPUTS = len(datagen.photo_paths()) + GENERATED + 1  # the photos, the generated JPEGs, a broken file


@pytest.fixture(scope='module', name='images')
def images_fixture(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp('flink_images')
  for path in datagen.photo_paths():
    shutil.copy(path, directory / path.name)
  datagen.make_jpegs(directory / 'generated', GENERATED, seed=7)
  (directory / 'broken.jpg').write_bytes((datagen.PHOTOS / 'hot_dog.jpg').read_bytes()[:5000])
  return directory


def _job(images: pathlib.Path) -> list:
  return ['--input', f'{images}/*.*,{images}/generated/*.jpg', '--model', datagen.HUB_CLASSIFIER,
          '--task', 'both', '--labels_file', str(datagen.LABELS), '--top_k', '5']


@pytest.fixture(scope='module', name='direct')
def direct_fixture(images, hub_cache, tmp_path_factory) -> conftest.JobResult:
  """The same job on the local runner, what Flink's output must equal."""
  del hub_cache  # the session's TF-Hub cache, set in the environment, resolves the handle
  direct = conftest.run_job(tmp_path_factory.mktemp('direct') / 'out', _job(images))
  assert direct.predictions.num_rows == INPUTS - 1 and direct.errors.num_rows == 1
  return direct


def _launch(out: pathlib.Path, args: list, flags: list, **popen) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, '-m', 'pipeline', '--output', str(out)] + args + flags,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _finish(proc: subprocess.Popen, progress_line: bool = False) -> dict:
  stdout, stderr = proc.communicate(timeout=1200)
  assert proc.returncode == 0, stderr[-6000:]
  assert 'Final accumulator values' not in stderr  # no job server's metric dump in the log
  if progress_line:  # the launcher's line, from the job's counters in Flink's REST API (docs/options.md)
    assert f'progress: {INPUTS:,}/{INPUTS:,} images (100.0%)' in stderr, stderr[-3000:]
  return json.loads(stdout)


def _sorted_rows(table):
  return sorted(table.to_pylist(), key=lambda row: row['id'])


def assert_same_output(out: pathlib.Path, report: dict, direct: conftest.JobResult, restarted: bool = False) -> None:
  """Rows, error rows and the summary's tally as the local runner's: each id once, every input accounted.
  `restarted`: Flink restarted the job, whose last attempt read only the units the failed one had not committed."""
  predictions = conftest.read_dataset(out / 'predictions')
  errors = conftest.read_dataset(out / 'errors')
  assert predictions.schema.equals(direct.predictions.schema)
  expected, actual = _sorted_rows(direct.predictions), _sorted_rows(predictions)
  assert [r['id'] for r in actual] == [r['id'] for r in expected]  # sorted, so a duplicate would show
  for want, got in zip(expected, actual):
    for column in ('source', 'width', 'height', 'model', 'top_classes', 'top_labels'):
      assert got[column] == want[column], (want['id'], column)
    np.testing.assert_allclose(got['top_scores'], want['top_scores'], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got['embedding'], want['embedding'], rtol=1e-4, atol=1e-5)
  assert _sorted_rows(errors) == _sorted_rows(direct.errors)
  summary = json.loads((out / 'summary.json').read_text())  # the job's own tally, from its commit step
  assert summary == report
  for key in ('records_read', 'rows_written', 'errors', 'errors_by_stage', 'duplicate_ids', 'accounted'):
    assert summary[key] == direct.summary[key], key
  assert summary['records_read'] == INPUTS and summary['rows_written'] == predictions.num_rows
  assert summary['accounted'] is True and summary['duplicate_ids'] == 0
  assert summary['errors_by_stage'] == {'decode': 1}
  read = sum(summary['records_read_by_worker'])  # Beam's counters: of the attempt that finished
  # after a restart, maybe none: seen in CI after Flink restarted twice, the list came back empty
  assert 0 <= read < INPUTS if restarted else read == INPUTS, summary['records_read_by_worker']
  assert not (out / '_staging').exists()  # the commit cleaned up


def _spread(cluster: flink.Cluster, jid: str, report: dict) -> dict:
  """Records read per TaskManager: Flink's copy of the job's per-worker metric, mapped through the workers'
  logs; it must be what summary.json shows."""
  reads = cluster.reads_by_worker(jid)
  assert sorted(reads.values(), reverse=True) == report['records_read_by_worker']
  owners = cluster.worker_taskmanagers()
  by_taskmanager: dict = {}
  for worker, count in reads.items():
    taskmanager = owners[int(worker.rsplit(':', 1)[1])]
    by_taskmanager[taskmanager] = by_taskmanager.get(taskmanager, 0) + count
  return by_taskmanager


def test_flink_output_equals_direct_runner_output(flink_flags, images, direct, tmp_path):
  name = f'flink-test-{uuid.uuid4().hex[:8]}'
  report = _finish(_launch(tmp_path / 'flink', _job(images) + ['--job_name', name], flink_flags), progress_line=True)
  assert_same_output(tmp_path / 'flink', report, direct)
  cluster = flink.RUNNING
  job = cluster.job(name)  # it really ran on the cluster, through the standing job server
  assert job['state'] == 'FINISHED'
  by_taskmanager = _spread(cluster, job['jid'], report)
  assert set(by_taskmanager) == {f'tm-{i}' for i in range(1, flink.TASKMANAGERS + 1)}, by_taskmanager
  assert all(count > 0 for count in by_taskmanager.values()), by_taskmanager  # both nodes' workers read
  forked, owners = cluster.pooled_workers(), cluster.worker_taskmanagers()
  for worker in cluster.reads_by_worker(job['jid']):  # each forked by its own TaskManager's pool
    pid = int(worker.rsplit(':', 1)[1])
    assert forked.get(pid) == owners[pid], (worker, forked)


def _wait_for_a_committed_unit(proc: subprocess.Popen, out: pathlib.Path) -> None:
  deadline = time.monotonic() + 600
  while not list((out / '_units').glob('*.json')):
    assert proc.poll() is None, proc.communicate()[1][-6000:]
    assert time.monotonic() < deadline, 'no committed unit after 600 s'
    time.sleep(0.05)


def test_flink_job_survives_a_killed_taskmanager(flink_flags, images, direct, tmp_path):
  """SIGKILL a TaskManager once the run has committed read units; a supervisor (here the test) starts it again;
  Flink restarts the job (conf/config.yaml's restart strategy) and its output is exact."""
  cluster, out, name = flink.RUNNING, tmp_path / 'flink', f'flink-kill-{uuid.uuid4().hex[:8]}'
  proc = _launch(out, _job(images) + ['--job_name', name, '--files_per_unit', '16'], flink_flags)
  try:
    _wait_for_a_committed_unit(proc, out)
    victim, its_workers = cluster.taskmanager_pid(2), psutil.Process(cluster.pool_pid(2)).children()
    assert its_workers, "no SDK worker forked for TaskManager 2 while the job runs"
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    _wait_gone(victim)
    for worker in its_workers:  # its pool's forks stop with it (their clients, its children, are orphaned)
      _wait_gone(worker.pid, timeout=30)
    cluster.start_taskmanager(2)  # as a supervisor (systemd, Kubernetes) replaces a lost node
    report = _finish(proc)
  finally:
    if proc.poll() is None:
      proc.kill()
  cluster.wait_for_taskmanagers()  # the next test finds the cluster whole
  assert cluster.taskmanager_pid(2) != victim
  job = cluster.job(name)
  assert job['state'] == 'FINISHED'
  assert cluster.failures(job['jid']) and job['timestamps'].get('RESTARTING', 0) > 0  # Flink restarted it
  assert job['end-time'] / 1000 > time.time() - (time.monotonic() - killed_at)  # it ended after the kill
  assert_same_output(out, report, direct, restarted=True)


def _snapshot(out: pathlib.Path) -> dict:
  """Every file under the output, with its size and modification time."""
  return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob('*') if p.is_file()}


def _processes(cluster: flink.Cluster, index: int) -> tuple:
  """TaskManager index's SDK workers (its pool's forks) and their clients (its JVM's children)."""
  return (psutil.Process(cluster.pool_pid(index)).children(),
          psutil.Process(cluster.taskmanager_pid(index)).children(recursive=True))


def _hold_a_writer(cluster: flink.Cluster, proc: subprocess.Popen, out: pathlib.Path) -> tuple:
  """Holds (SIGSTOP) every SDK worker and client while a part is being written, and keeps the TaskManager whose
  worker has it open held: (its index, the parts it has open, its workers, its clients). The other
  TaskManager's processes run on."""
  deadline = time.monotonic() + 300
  while True:
    assert proc.poll() is None and time.monotonic() < deadline, 'no unit was seen being written'
    if not list(out.glob('predictions/_inprogress-*')):
      time.sleep(0.005)
      continue
    held, writing, index = {}, {}, None
    try:
      held = {i: _processes(cluster, i) for i in range(1, flink.TASKMANAGERS + 1)}
      for workers, clients in held.values():
        for process in workers + clients:
          with contextlib.suppress(psutil.NoSuchProcess):
            process.suspend()
      for i, (workers, _) in held.items():
        with contextlib.suppress(psutil.Error):
          writing[i] = [f.path for w in workers for f in w.open_files() if '/predictions/_inprogress-' in f.path]
      index = next((i for i, paths in writing.items() if paths), None)
    finally:
      for i, (workers, clients) in held.items():
        if i != index:
          _resume(workers + clients)
    if index is not None:
      return (index, writing[index]) + held[index]


def test_a_held_attempt_of_a_lost_taskmanager_changes_nothing_after_the_commit(flink_flags, images, direct, tmp_path):
  """The failover above, with a TaskManager's SDK workers and their clients held (SIGSTOP) from a moment one of
  them has a unit's part open until the restarted job has committed: the attempt Flink gave up on is of the same run,
  so it passes the run-id check. Let go once the launcher has exited (the workers first, then the clients that
  kill them), it changes no file of the finished output (lease.check_held: the run's lease is released), and
  readers see each id once."""
  cluster, out, name = flink.RUNNING, tmp_path / 'flink', f'flink-held-{uuid.uuid4().hex[:8]}'
  proc = _launch(out, _job(images) + ['--job_name', name, '--files_per_unit', '64'], flink_flags)
  workers: List[psutil.Process] = []
  clients: List[psutil.Process] = []
  try:
    _wait_for_a_committed_unit(proc, out)
    index, writing, workers, clients = _hold_a_writer(cluster, proc, out)
    victim = cluster.taskmanager_pid(index)
    os.kill(victim, signal.SIGKILL)
    _wait_gone(victim)
    cluster.start_taskmanager(index)
    report = _finish(proc)
    finished = _snapshot(out)
    _resume(workers)
    time.sleep(10)  # what a held worker does once let go, it has done by now
    _resume(clients)
    for process in workers + clients:
      _wait_gone(process.pid, timeout=60)
  finally:
    _resume(workers + clients)
    if proc.poll() is None:
      proc.kill()
    cluster.wait_for_taskmanagers()
  assert _snapshot(out) == finished  # no part, marker or manifest landed or changed after the commit
  for path in writing:  # the held attempt's part never landed: the restarted attempt wrote that unit again
    assert not (out / 'predictions' / os.path.basename(path)[len('_inprogress-'):]).exists(), path
  job = cluster.job(name)
  assert job['state'] == 'FINISHED' and cluster.failures(job['jid'])
  assert_same_output(out, report, direct, restarted=True)


def test_a_killed_launchers_job_left_on_flink_writes_nothing_once_a_resume_took_over(flink_flags, images, direct,
                                                                                      tmp_path):
  """SIGKILL the launcher mid-job: its Flink job runs on, unwatched; a --resume at once takes the output's lease
  over (its holder died on this host). The old job's workers then commit nothing (lease.check_held: they fail
  and Flink gives up on it) and the resumed run's output is exact. The old job's SDK workers are held
  (SIGSTOP) from the kill until the takeover, so that it is still mid-job then however fast it runs."""
  cluster, out, name = flink.RUNNING, tmp_path / 'flink', f'flink-orphan-{uuid.uuid4().hex[:8]}'
  job = _job(images) + ['--files_per_unit', '16']
  proc = _launch(out, job + ['--job_name', name], flink_flags)
  try:
    _wait_for_a_committed_unit(proc, out)
    workers = [w for i in range(1, flink.TASKMANAGERS + 1) for w in psutil.Process(cluster.pool_pid(i)).children()]
    for worker in workers:
      worker.suspend()
    old_run = json.loads((out / '_lease.json').read_text())['run_id']
  finally:
    proc.kill()
  proc.wait()
  resumed = _launch(out, job + ['--job_name', f'{name}-resumed', '--resume'], flink_flags)
  try:
    while True:  # the resume's claim: the lease taken over from the dead launcher
      holder = json.loads((out / '_lease.json').read_text())
      if holder['run_id'] != old_run:
        break
      assert resumed.poll() is None, resumed.communicate()[1][-6000:]
      time.sleep(0.05)
    _resume(workers)
    report = _finish(resumed)
  finally:
    _resume(workers)  # never left stopped: a held worker would keep the old job's slots from the next test
    if resumed.poll() is None:
      resumed.kill()
  orphan = cluster.job(name)
  assert orphan['state'] == 'FAILED', orphan['state']  # its slots were the resume's only once it ended
  assert any('no longer holds the lease' in trace for trace in cluster.failures(orphan['jid']))
  taken_over = datetime.datetime.strptime(holder['started'], '%Y-%m-%dT%H:%M:%SZ').replace(
      tzinfo=datetime.timezone.utc).timestamp()
  for marker in (out / '_units').glob('*.json'):
    if json.loads(marker.read_text())['run'] == old_run:
      assert marker.stat().st_mtime < taken_over + 1, f'{marker.name} written by the old job after the takeover'
  assert report['resumed']['skipped_units'] > 0, report['resumed']
  assert_same_output(out, report, direct, restarted=True)


def _resume(workers: List[psutil.Process]) -> None:
  """SIGCONT to each held worker still there (Flink may have ended one while it was held)."""
  for worker in workers:
    with contextlib.suppress(psutil.NoSuchProcess):
      worker.resume()


def _wait_gone(pid: int, timeout: float = 60) -> None:
  """Until a killed process has exited (the kernel takes a moment to tear down a large JVM)."""
  deadline = time.monotonic() + timeout
  while True:
    try:
      if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
        return
    except psutil.NoSuchProcess:
      return
    assert time.monotonic() < deadline, f'process {pid} still there {timeout} s after SIGKILL'
    time.sleep(0.1)


def test_flink_embedding_analysis_matches_numpy(flink_flags, images, tmp_path):
  """--analyze_embeddings on the cluster: the full-pass tf.Transform analysis, its export and the columns."""
  out = tmp_path / 'flink_pca'
  report = _finish(_launch(out, [
      '--input', f'{images}/*.*,{images}/generated/*.jpg', '--model', datagen.HUB_FEATURES, '--task', 'embed',
      '--analyze_embeddings', '--pca_dims', '16', '--whiten'], flink_flags))
  predictions = conftest.read_dataset(out / 'predictions')
  stats = report['embedding_analysis']
  assert stats['count'] == predictions.num_rows == INPUTS - 1
  checks.assert_pca_matches_numpy(out, predictions, stats, 16)
  assert not list(out.glob('tft_tmp-*'))  # scratch space removed
