"""Airflow in its own virtualenv beside the project's (its pins would fight Beam's), installed once, reused.

`python -m tests.airflow_env` installs it (a separate, timed step of .ci/run); the Airflow tests call
ensure(), which reinstalls only when templates/airflow/requirements.txt or constraints.txt changed.
"""
import hashlib
import pathlib
import subprocess
import sys
import time

from tests.datagen import ROOT

TEMPLATE = ROOT / 'templates' / 'airflow'
REQUIREMENTS = TEMPLATE / 'requirements.txt'
CONSTRAINTS = TEMPLATE / 'constraints.txt'
VENV = ROOT / '.venv-airflow'


def _digest() -> str:
  return hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()


def ensure() -> pathlib.Path:
  """The Airflow virtualenv's bin directory, installed from the pinned requirements if not already."""
  stamp = VENV / 'installed.sha256'
  digest = _digest()
  if stamp.is_file() and stamp.read_text() == digest:
    return VENV / 'bin'
  subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
  pip = str(VENV / 'bin' / 'pip')
  subprocess.run([pip, 'install', '-q', '-r', str(REQUIREMENTS), '-c', str(CONSTRAINTS)], check=True)
  stamp.write_text(digest)
  return VENV / 'bin'


if __name__ == '__main__':
  started = time.monotonic()
  print(f'airflow: environment ready in {ensure().parent} after {time.monotonic() - started:.0f}s')
