"""A real standalone Flink cluster for tests, started by templates/flink/flink.sh as templates/flink/README.md
tells users (Flink and the job server are cached outside the project)."""
import contextlib
import os
import pathlib
import shlex
import subprocess
import sys
from typing import Iterator, List

from tests import datagen, gcs

FLINK_SH = datagen.ROOT / 'templates' / 'flink' / 'flink.sh'


def _flink_sh(command: str, env: dict, timeout: int) -> str:
  proc = subprocess.run(['bash', str(FLINK_SH), command], env=env, capture_output=True, text=True,
                        timeout=timeout, check=False)
  assert proc.returncode == 0, f'flink.sh {command} failed:\n{proc.stderr[-4000:]}'
  return proc.stdout


@contextlib.contextmanager
def cluster(run_dir: pathlib.Path, tfhub_cache: pathlib.Path) -> Iterator[List[str]]:
  """A fresh cluster on free ports (a developer's own cluster on 8081 stays untouched); yields job flags."""
  env = dict(os.environ, PYTHON=sys.executable, FLINK_RUN_DIR=str(run_dir), TFHUB_CACHE_DIR=str(tfhub_cache),
             FLINK_REST_PORT=str(gcs.free_port()), FLINK_RPC_PORT=str(gcs.free_port()),
             WORKER_POOL_PORT=str(gcs.free_port()))
  try:
    _flink_sh('start', env, timeout=1800)  # the first run on a machine downloads and builds
    yield shlex.split(_flink_sh('flags', env, timeout=600))
  finally:
    _flink_sh('stop', env, timeout=120)
