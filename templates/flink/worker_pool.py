"""A pool beside each TaskManager that forks SDK workers from a Python that has imported Beam and the job.

A worker started from nothing spends 3 to 4 s of every Flink job's start-up importing Beam, the job's modules
and TensorFlow, on all of a TaskManager's workers at once. The pool pays that once, when flink.sh starts the
TaskManager; each worker is then a fork of it, serving bundles within a fraction of a second.

One file, two roles:
  python worker_pool.py serve SOCKET        the pool; flink.sh starts one per TaskManager
  python -S worker_pool.py start SOCKET ..  what sdk_worker.sh runs when the TaskManager starts a worker: asks
                                            the pool for one and lives as long as it does. Without a pool (none
                                            at SOCKET, or its imported code changed since) it runs sdk_worker.py
                                            itself, as before the pool. Stdlib only: it starts in milliseconds.
The client hands the pool its stdin, stdout and stderr (SCM_RIGHTS), its working folder and its environment, so
the forked worker runs and logs as a worker the TaskManager started would (the pool's environment is the
TaskManager's, from flink.sh; the client's is laid over it). A worker whose client is gone (Beam
stopped it, or the TaskManager died and its client with it) is killed by the pool; the client forwards
SIGTERM to its worker; a worker stops itself when the pool is gone (sdk_worker.stop_when_orphaned).
"""
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
PRELOAD = 'pipeline.graph tensorflow tensorflow_hub'  # SDK_WORKER_PRELOAD: what every worker would import
STALE = b'stale\n'  # the pool's answer when its code changed on disk: the client starts a worker itself


def _log(message: str) -> None:
  sys.stderr.write(f'{time.strftime("%Y-%m-%d %H:%M:%S")} worker pool pid {os.getpid()}: {message}\n')
  sys.stderr.flush()


# The client, in the TaskManager's stead.

def start(path: str, argv: list) -> None:
  """Asks the pool at `path` for a worker with these arguments and returns its exit code as this process's."""
  try:
    pool = socket.socket(socket.AF_UNIX)
    pool.settimeout(30)  # a pool that does not answer: a worker of our own (the pool kills its late fork)
    pool.connect(path)
    request = json.dumps({'argv': argv, 'cwd': os.getcwd(), 'env': dict(os.environ)}).encode() + b'\n'
    socket.send_fds(pool, [request], [0, 1, 2])
    answer = _lines(pool)
    first = next(answer, b'')
  except OSError:
    first = b''
  if not first.startswith(b'pid '):  # no pool, or stale: a worker of our own, as the TaskManager would start
    os.execv(sys.executable, [sys.executable, os.path.join(HERE, 'sdk_worker.py')] + argv)
  worker = int(first.split()[1])
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda signum, _: os.kill(worker, signum))
  taskmanager = os.getppid()
  pool.settimeout(1)
  for line in answer:
    if line.startswith(b'exit '):
      code = int(line.split()[1])
      if code < 0:  # killed by a signal: so is this process, as if it had been the worker
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
      sys.exit(code)
    if os.getppid() != taskmanager:  # the TaskManager died: its worker goes with it
      break
  os.kill(worker, signal.SIGKILL)  # the pool is gone, or the TaskManager
  sys.exit(1)


def _lines(conn: socket.socket):
  """Lines from `conn`; b'' each time a timeout passes without one (for the caller's checks); ends at EOF."""
  buffer = b''
  while True:
    try:
      data = conn.recv(4096)
    except socket.timeout:
      yield b''
      continue
    except OSError:
      return
    if not data:
      return
    buffer += data
    while b'\n' in buffer:
      line, buffer = buffer.split(b'\n', 1)
      yield line


# The pool.

def serve(path: str) -> None:
  """Imports what the workers would, then forks a worker per request until SIGTERM."""
  sys.path.insert(0, HERE)
  from transforms import native_logs  # pylint: disable=import-outside-toplevel
  started = time.monotonic()
  with native_logs.quiet():  # TensorFlow's start-up notices
    for name in os.environ.get('SDK_WORKER_PRELOAD', PRELOAD).split():
      __import__(name)
  import sdk_worker  # pylint: disable=import-outside-toplevel
  sources = _sources()
  _log(f'imported {len(sources)} modules in {time.monotonic() - started:.1f} s; serving {path}')
  listener = socket.socket(socket.AF_UNIX)
  if os.path.exists(path):
    os.unlink(path)
  listener.bind(path + '.new')
  listener.listen(64)
  os.replace(path + '.new', path)  # clients find the socket only once it accepts
  own = os.stat(path).st_ino
  selector = selectors.DefaultSelector()
  selector.register(listener, selectors.EVENT_READ)
  workers = {}  # pid -> the client's connection
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  try:
    while True:
      for key, _ in selector.select(timeout=0.5):
        if key.fileobj is listener:
          _accept(listener, selector, workers, sources, sdk_worker.main)
        elif not _read_quietly(key.fileobj):  # the client is gone: so is its worker
          pid = next(p for p, c in workers.items() if c is key.fileobj)
          _kill(pid)
          selector.unregister(key.fileobj)
      _reap(selector, workers)
  finally:
    for pid in workers:
      _kill(pid, signal.SIGTERM)
    if os.path.exists(path) and os.stat(path).st_ino == own:  # not a newer pool's
      os.unlink(path)


def _accept(listener, selector, workers: dict, sources: dict, worker_main) -> None:
  conn, _ = listener.accept()
  conn.settimeout(10)
  try:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    while not data.endswith(b'\n'):
      more = conn.recv(1 << 20)
      if not more:
        raise OSError('the client left mid-request')
      data += more
    request = json.loads(data)
  except (OSError, ValueError) as e:
    _log(f'dropped a request: {e}')
    conn.close()
    return
  if _sources(sources) != sources:
    _log('the imported code changed on disk: workers start on their own until the pool is started again')
    conn.sendall(STALE)
    conn.close()
    for fd in fds:
      os.close(fd)
    return
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    selector.close()
    listener.close()
    for other in workers.values():
      other.close()
    conn.close()
    _run_worker(request, fds, worker_main)  # never returns
  for fd in fds:
    os.close(fd)
  _log(f'forked worker pid {pid} for {request["env"].get("TASKMANAGER_ID", "unknown")}')
  workers[pid] = conn  # _reap tells the client how it ended; from here on the pool outlives any client
  try:
    conn.sendall(f'pid {pid}\n'.encode())
  except OSError:  # the client is gone already: so is its worker
    _kill(pid)
    return
  selector.register(conn, selectors.EVENT_READ)


def _run_worker(request: dict, fds: list, worker_main) -> None:
  """In the forked child: become the client's worker (its stdio, folder and environment), run, exit."""
  code = 1
  try:
    for target, fd in zip((0, 1, 2), fds):
      os.dup2(fd, target)
      os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request['cwd'])
    os.environ.update(request['env'])
    worker_main(request['argv'])
    code = 0
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else int(e.code is not None)
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access  # never back into the pool's loop


def _read_quietly(conn: socket.socket) -> bool:
  """Whether the client is still there (a client sends nothing after its request: readable means gone)."""
  try:
    conn.setblocking(False)
    return bool(conn.recv(1))
  except BlockingIOError:
    return True
  except OSError:
    return False


def _reap(selector, workers: dict) -> None:
  """Tells each ended worker's client its exit code."""
  while workers:
    try:
      pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
      return
    if pid == 0:
      return
    conn = workers.pop(pid, None)
    if conn is None:
      continue
    try:
      conn.setblocking(True)
      conn.sendall(f'exit {os.waitstatus_to_exitcode(status)}\n'.encode())
    except OSError:
      pass  # the client is gone
    if conn.fileno() in selector.get_map():
      selector.unregister(conn)
    conn.close()


def _kill(pid: int, signum: int = signal.SIGKILL) -> None:
  try:
    os.kill(pid, signum)
  except ProcessLookupError:
    pass


def _sources(previous: dict = None) -> dict:
  """Modification times of the files of every imported module (or of those `previous` lists)."""
  files = previous.keys() if previous is not None else {
      m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, '__file__', None), str)}
  times = {}
  for name in files:
    try:
      times[name] = os.stat(name).st_mtime_ns
    except OSError:
      times[name] = None
  return times


if __name__ == '__main__':
  if sys.argv[1:2] == ['serve']:
    serve(sys.argv[2])
  elif sys.argv[1:2] == ['start']:
    start(sys.argv[2], sys.argv[3:])
  else:
    sys.exit(f'usage: {sys.argv[0]} serve SOCKET | start SOCKET WORKER-ARGS...')
