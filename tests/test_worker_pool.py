"""templates/flink/worker_pool.py: SDK workers forked by a pool, as a TaskManager starts them (sdk_worker.sh's
`worker_pool.py start`), stopped with their client, and started without the pool when it is not there or its
code changed. The workers are real SDK workers (sdk_worker.py); their provision service is a port nobody
answers on (the worker waits) or nobody listens on (the worker fails at once)."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from tests import datagen, gcs

POOL = datagen.ROOT / 'templates' / 'flink' / 'worker_pool.py'


@pytest.fixture
def pool(tmp_path):
  """A pool preloading a module of the test's own (pool.module), serving pool.socket; its log is pool.log."""
  module = tmp_path / 'preloaded_by_test.py'
  module.write_text('VALUE = 1\n')
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(datagen.ROOT), str(tmp_path)]),
             SDK_WORKER_PRELOAD='preloaded_by_test', TASKMANAGER_ID='tm-test')
  path, log = tmp_path / 'pool.sock', tmp_path / 'pool.log'
  with open(log, 'ab') as stderr:
    proc = subprocess.Popen([sys.executable, str(POOL), 'serve', str(path)], env=env, stderr=stderr)
  deadline = time.monotonic() + 120
  while not path.exists():
    assert proc.poll() is None, log.read_text()
    assert time.monotonic() < deadline, 'the pool did not listen within 120 s'
    time.sleep(0.1)
  proc.socket, proc.log, proc.module, proc.env = path, log, module, env
  yield proc
  proc.terminate()
  proc.wait(timeout=30)
  assert not path.exists()  # the pool removes its socket


def _client(pool, endpoint: str, stderr: pathlib.Path, socket_path=None) -> subprocess.Popen:
  """What sdk_worker.sh runs for the TaskManager."""
  with open(stderr, 'ab') as err:
    return subprocess.Popen([sys.executable, '-S', str(POOL), 'start', str(socket_path or pool.socket),
                             '--id=worker-1', f'--provision_endpoint={endpoint}'], env=pool.env, stderr=err)


def _worker_pid(stderr: pathlib.Path, timeout: float = 60) -> int:
  """The pid the worker logs (sdk_worker.py's first line)."""
  deadline = time.monotonic() + timeout
  while True:
    found = re.search(r'tm-test: SDK worker pid (\d+): --id=worker-1', stderr.read_text(errors='replace'))
    if found:
      return int(found.group(1))
    assert time.monotonic() < deadline, stderr.read_text()
    time.sleep(0.05)


def _gone(pid: int, timeout: float = 15) -> bool:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
        return True
    except psutil.NoSuchProcess:
      return True
    time.sleep(0.05)
  return False


@pytest.fixture
def silent_endpoint():
  """A provision service that accepts connections and never answers: the worker waits on it."""
  with socket.socket() as server:
    server.bind(('localhost', 0))
    server.listen(8)
    yield f'localhost:{server.getsockname()[1]}'


def test_the_pool_forks_the_worker_and_the_client_exits_as_it_does(pool, tmp_path):
  stderr = tmp_path / 'client.log'
  client = _client(pool, f'localhost:{gcs.free_port()}', stderr)  # nobody listens: the worker fails
  assert client.wait(timeout=120) == 1
  worker = _worker_pid(stderr)
  assert worker != client.pid
  assert f'forked worker pid {worker} for tm-test' in pool.log.read_text()
  assert 'provision' in stderr.read_text().lower()  # the worker's own error, in the TaskManager's log


@pytest.mark.parametrize('signum', [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_client_takes_its_worker_with_it(pool, tmp_path, silent_endpoint, signum):
  """Beam stops a worker through its process (SIGTERM, then SIGKILL); a TaskManager's death kills it too."""
  stderr = tmp_path / 'client.log'
  client = _client(pool, silent_endpoint, stderr)
  worker = _worker_pid(stderr)
  assert psutil.Process(worker).ppid() == pool.pid and not _gone(worker, timeout=1)  # waiting on provision
  client.send_signal(signum)
  assert client.wait(timeout=30) == -signum  # SIGTERM: forwarded; the worker died of it, and so does the client
  assert _gone(worker), f'worker {worker} outlived its client'


def test_without_a_pool_or_with_changed_code_the_client_runs_the_worker_itself(pool, tmp_path):
  endpoint = f'localhost:{gcs.free_port()}'
  for case, socket_path in (('no pool', tmp_path / 'none.sock'), ('stale', None)):
    if case == 'stale':
      stat = pool.module.stat()
      os.utime(pool.module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the code changed on disk
    stderr = tmp_path / f'{case}.log'
    client = _client(pool, endpoint, stderr, socket_path)
    assert client.wait(timeout=120) == 1, case
    assert _worker_pid(stderr) == client.pid, case  # sdk_worker.py ran in the client's process
  assert 'the imported code changed on disk' in pool.log.read_text()
  assert 'forked worker' not in pool.log.read_text()
