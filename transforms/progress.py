"""Progress of long runs, counted in each worker process: images done, error rows, and the records and bytes read
of the shards whose records the launcher estimates from their bytes (TFRecord, tar), and what the planning listed
(the launcher's total: transforms/read/totals.py).

Process-wide because a worker runs many DoFn instances on its threads. The
counts leave the process one of two ways:
  - On the local runner the launcher names a scratch folder in the environment
    (FOLDER_ENV, inherited by the worker processes it starts; never under
    --output). A daemon thread here then replaces FOLDER/PID.json with this
    process's cumulative counts every PUBLISH_SECONDS, and flush() at the end
    of each bundle, so that the last counts are out before the job ends; the
    launcher sums the files into one line (pipeline/live_progress.py: why files).
  - Elsewhere (Flink, Dataflow, whose workers do not share the launcher's
    disk) each worker logs `progress: worker PID has done N images, R images/s`
    every --progress_seconds, and the launcher reads the same counts as Beam
    counters (namespace NAMESPACE) from the runner while the job runs, where
    the runner gives them (Flink's REST API).
Log messages start with MARK so that the entry point lets them through while
it quiets the rest of the runner's worker logs.
"""
import json
import logging
import os
import threading
import time
from typing import Dict, Optional

from apache_beam.metrics import Metrics

from transforms.read.formats import detect

MARK = 'progress:'
FOLDER_ENV = 'IMAGE_INFERENCE_PROGRESS_DIR'
PUBLISH_SECONDS = 0.5
FIELDS = ('done', 'errors', 'skipped', 'tfrecord_records', 'tfrecord_bytes', 'tar_records', 'tar_bytes',  # PID.json
          'arrow_records', 'arrow_bytes', 'planned', 'planned_tfrecord_bytes', 'planned_tar_bytes',
          'planned_arrow_bytes', 'inputs_split', 'listing_shards', 'shards_listed')
NAMESPACE = 'progress'  # the Beam counters of the same names
_COUNTERS = {name: Metrics.counter(NAMESPACE, name) for name in FIELDS}

_lock = threading.Lock()
_state: Dict = {'folder': None, 'start': None, 'last': 0.0, 'counts': dict.fromkeys(FIELDS, 0), 'version': 0,
                'written': -1}


def _folder() -> Optional[str]:
  """The launcher's scratch folder for this run, or None; a new folder (a new run in this process) starts the
  counts again. Called with _lock held."""
  folder = os.environ.get(FOLDER_ENV) or None
  if folder != _state['folder']:
    _state.update(folder=folder, start=None, last=0.0, counts=dict.fromkeys(FIELDS, 0), version=0, written=-1)
    if folder:
      threading.Thread(target=_publish_loop, args=(folder,), name=f'progress {folder}', daemon=True).start()
  return folder


def _count(**added: int) -> Optional[str]:
  with _lock:
    folder = _folder()
    for name, n in added.items():
      if n:
        _state['counts'][name] += n
        _COUNTERS[name].inc(n)
    _state['version'] += 1
    return folder


def add(rows: int, interval_seconds: float, errors: int = 0) -> None:
  """`rows` predictions and `errors` error rows formatted: images done. Logs this worker's progress every
  interval_seconds unless the launcher collects it (a scratch folder is set)."""
  if _count(done=rows + errors, errors=errors):
    return
  with _lock:
    now = time.monotonic()
    if _state['start'] is None:
      _state['start'] = _state['last'] = now
    if now - _state['last'] < interval_seconds:
      return
    _state['last'] = now
    done = _state['counts']['done']
    rate = done / max(now - _state['start'], 1e-9)
  logging.info('%s worker %d has done %d images, %.1f images/s', MARK, os.getpid(), done, rate)


def read_tfrecord(records: int, nbytes: int) -> None:
  """TFRecord records read and the bytes they span: the launcher estimates the shards' records from them."""
  _count(tfrecord_records=records, tfrecord_bytes=nbytes)


def read_tar(records: int, nbytes: int) -> None:
  """Tar samples read and the shard bytes consumed for them: the launcher estimates the shards' samples from them."""
  _count(tar_records=records, tar_bytes=nbytes)


def read_arrow(records: int, nbytes: int) -> None:
  """Arrow IPC rows read and the file bytes consumed for them: the launcher estimates the files' rows from them."""
  _count(arrow_records=records, arrow_bytes=nbytes)


def listed(fmt: str, size: Optional[int]) -> None:
  """A file the planning listed: an image file is a record; a shard counts its bytes (transforms/read/totals.py)."""
  if fmt in (detect.TFRECORD, detect.TAR, detect.ARROW):
    _count(**{f'planned_{fmt}_bytes': size or 0})
  elif fmt != detect.PARQUET:  # a table's rows are counted from its footer, when its units are planned
    _count(planned=1)


def table_planned(rows: int) -> None:
  """A Parquet table's rows, from its footer."""
  _count(planned=rows)


def shards_planned(shards: int) -> None:
  """One input cut into its listing shards (transforms/read/match.py)."""
  _count(inputs_split=1, listing_shards=shards)


def shard_listed() -> None:
  """One listing shard listed to its end: once every input is cut and every shard listed, the total is whole."""
  _count(shards_listed=1)


def skipped(records: int) -> None:
  """Records of a read unit that an earlier run committed (--resume): done without being read again."""
  _count(done=records, skipped=records)


def snapshot() -> Dict[str, int]:
  """This run's counts in this process (none yet when the run's folder is new: an earlier run's are not it)."""
  with _lock:
    _folder()
    return dict(_state['counts'])


_writing = threading.Lock()  # one writer of PID.json at a time: the publishing thread or a bundle's flush()


def flush() -> bool:
  """Writes this process's counts now if they changed since the last write; False when there is no folder to
  write to (any more). Called at the end of each bundle, so the last counts are out before the job ends."""
  with _writing:
    with _lock:
      folder, version, counts = _state['folder'], _state['version'], dict(_state['counts'])
    if not folder or not os.path.isdir(folder):
      return False
    if version != _state['written']:
      path = os.path.join(folder, f'{os.getpid()}.json')
      try:
        with open(f'{path}.tmp', 'w', encoding='utf-8') as f:
          json.dump(counts, f)
        os.replace(f'{path}.tmp', path)  # the launcher never reads half a file
      except OSError:  # the launcher removed the folder: the run is over
        return False
      _state['written'] = version
    return True


def _publish_loop(folder: str) -> None:
  """Writes this process's counts every PUBLISH_SECONDS when they changed, until the run (its folder) changes
  or goes away."""
  while True:
    with _lock:
      if _state['folder'] != folder:
        return
    if not flush():
      return
    time.sleep(PUBLISH_SECONDS)
