"""Virtualenvs of the benchmark's peers (Ray Data, Spark), each beside the job's and made from its own pinned
requirements file, once: made again only when that file changed. Stdlib only, so that it imports anywhere."""
import contextlib
import fcntl
import hashlib
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def ensure(venv: pathlib.Path, requirements: pathlib.Path) -> str:
  """The python of `venv`, installed from `requirements` (pip, quietly) unless its stamp says it already is.

  A lock beside the virtualenv keeps two processes (a test and a benchmark) from installing it at once."""
  digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
  python, stamp = venv / 'bin' / 'python', venv / 'installed.sha256'
  venv.parent.mkdir(parents=True, exist_ok=True)
  with open(venv.parent / f'.{venv.name}.lock', 'w', encoding='ascii') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      if stamp.is_file() and stamp.read_text(encoding='ascii') == digest and python.exists():
        return str(python)
      with contextlib.suppress(FileNotFoundError):
        stamp.unlink()
      subprocess.run([sys.executable, '-m', 'venv', '--clear', str(venv)], check=True)
      subprocess.run([str(python), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-r', str(requirements)],
                     check=True)
      stamp.write_text(digest, encoding='ascii')
      return str(python)
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)
