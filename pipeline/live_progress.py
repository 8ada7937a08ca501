"""The live progress of a run the launcher waits for: one line for all workers (shown by progress_view.py).

Where the counts come from, and why:
  - The local runner. Its run() returns only when the job is done, and Beam's
    metrics exist only in the result it returns then: the FnApiRunner gathers
    them from each finished bundle, and its progress requests have no public
    hook (the DirectRunner does not turn them on). So nothing can be asked
    mid-run. Each worker process instead writes its counts to PID.json in a
    scratch folder made here in the system's temp directory (never under
    --output) and named to the workers by an environment variable they inherit
    (transforms/progress.py); a thread here sums the files. The workers' log
    lines, relayed to the launcher, could carry the counts too, but would tie
    them to Beam's log format and levels.
  - Flink. Beam's metrics are Flink accumulators, which Flink's REST API serves
    while the job runs (refreshed with each TaskManager heartbeat, every 10 s by
    default): the thread polls the job's `progress` counters there, finding the
    job by its name (--job_name, which the launcher sets when it is not given).
    The counts arrive in steps (as the SDK workers' bundles finish, then with a
    heartbeat): a short job can go from 0 to the total between two polls. The
    last line comes from the finished job's counters, still served there.
    Not with an embedded Flink (--flink_master [auto] or [local]): no REST API.
  - Other runners (Dataflow): nothing here; Dataflow's console shows counters.
The total is what the workers' planning counted as it listed the inputs (transforms/read/totals.py): the
launcher lists nothing; the total grows, shown as an estimate, until every input is listed.
"""
import base64
import contextlib
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from typing import Callable, Dict, Iterator, Optional, Sequence

from apache_beam.coders.stream import InputStream
from apache_beam.options.pipeline_options import FlinkRunnerOptions, GoogleCloudOptions, StandardOptions

from pipeline import local_defaults, progress_view
from transforms.progress import FIELDS, FOLDER_ENV, NAMESPACE
from transforms.read import totals

LOCAL_POLL_SECONDS = 0.5
FLINK_POLL_SECONDS = 2.0
_MAGIC_MASTERS = ('[auto]', '[local]', '[collection]')

Counts = Dict[str, int]


def folder_counts(folder: str) -> Counts:
  """The sum of the workers' PID.json files (a file being replaced is read whole or not at all)."""
  summed = dict.fromkeys(FIELDS, 0)
  for name in os.listdir(folder):
    if not name.endswith('.json'):
      continue
    try:
      with open(os.path.join(folder, name), encoding='utf-8') as f:
        counts = json.load(f)
    except (OSError, ValueError):
      continue
    for field in FIELDS:
      summed[field] += int(counts.get(field, 0))
  return summed


def _get(url: str):
  with urllib.request.urlopen(url, timeout=5) as response:
    return json.load(response)


def flink_counters(rest: str, jid: str, namespace: str) -> Dict[str, int]:
  """The job's Beam counters (sum_int64) of one namespace, summed by name, from Flink's REST API at `rest`."""
  summed: Dict[str, int] = {}
  for accumulator in _get(f'{rest}/jobs/{jid}/accumulators')['user-task-accumulators']:
    if accumulator['name'] != '__metricscontainers':  # Beam's metrics, as JSON
      continue
    for metric in json.loads(accumulator['value'])['metrics']['attempted']:
      labels = metric.get('labels', {})
      if labels.get('NAMESPACE') == namespace:  # a sum_int64's payload is one varint
        value = InputStream(base64.b64decode(metric['payload'])).read_var_int64()
        summed[labels['NAME']] = summed.get(labels['NAME'], 0) + value
  return summed


class FlinkJob:
  """The job in Flink's REST API at `master`, found by its name (the newest of that name)."""

  def __init__(self, master: str, job_name: str):
    self.rest = (master if '://' in master else f'http://{master}').rstrip('/')
    self._name, self._jid = job_name, None

  def jid(self) -> Optional[str]:
    """None until the job is submitted."""
    if self._jid is None:
      jobs = [job for job in _get(f'{self.rest}/jobs/overview')['jobs'] if job['name'] == self._name]
      if jobs:
        self._jid = max(jobs, key=lambda job: job['start-time'])['jid']
    return self._jid

  def state(self) -> Optional[str]:
    """Flink's word for the job (RUNNING, RESTARTING, FINISHED, ...), None before it is submitted; the
    dispatcher's own, a cheap request."""
    return _get(f'{self.rest}/jobs/{self._jid}/status')['status'] if self.jid() else None

  def counters(self, namespace: str) -> Dict[str, int]:
    return flink_counters(self.rest, self.jid(), namespace) if self.jid() else {}

  def finished_counters(self, namespace: str, timeout: float = 10) -> Dict[str, int]:
    """A FINISHED job's final counters. The REST API serves a job's accumulators from its cached copy of the
    job (renewed every web.refresh-interval): read once the same copy's details say FINISHED."""
    deadline = time.monotonic() + timeout
    while _get(f'{self.rest}/jobs/{self._jid}')['state'] != 'FINISHED':
      if time.monotonic() > deadline:
        raise TimeoutError(f'Flink\'s REST API still serves job {self._jid} as unfinished after {timeout} s')
      time.sleep(0.1)
    return self.counters(namespace)


class FlinkCounts:
  """The job's `progress` counters, from Flink's REST API."""

  def __init__(self, job: FlinkJob):
    self._job = job

  def __call__(self) -> Optional[Counts]:
    if self._job.jid() is None:
      return None  # not submitted yet
    counters = self._job.counters(NAMESPACE)
    return {field: counters.get(field, 0) for field in FIELDS}


class Live:
  """Polls `counts` every `every` seconds and shows the line on `view` until closed; the total from the counts
  of the planned `inputs`' listing."""

  def __init__(self, counts: Callable[[], Optional[Counts]], inputs: Sequence[tuple], view, every: float):
    self._counts, self._view = counts, view
    self._inputs = len(inputs)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._loop, args=(every,), name='progress', daemon=True)
    self._thread.start()

  def snapshot(self) -> Optional[progress_view.Snapshot]:
    try:
      counts = self._counts()
    except Exception as e:  # pylint: disable=broad-except  # a missed poll; the next one may work
      logging.debug('progress: %s', e)
      return None
    if counts is None:
      return None
    found = totals.from_counts(counts, self._inputs)
    total = totals.estimate(found, counts)
    estimated = totals.is_estimated(found, counts)
    return progress_view.Snapshot(counts['done'], counts['errors'], counts['skipped'], total, estimated)

  def _loop(self, every: float) -> None:
    while not self._stop.wait(every):
      snapshot = self.snapshot()
      if snapshot is not None:
        self._view.update(snapshot)

  def close(self, finished: bool) -> None:
    """Stops polling; a finished run's line is shown once more, with the last counts."""
    self._stop.set()
    self._thread.join()
    self._view.close(self.snapshot() if finished else None)


def flink_job(p) -> Optional[FlinkJob]:
  """The job on Flink's REST API, on the FlinkRunner with a cluster's --flink_master; names the job if unnamed."""
  if p.options.view_as(StandardOptions).runner not in local_defaults.FLINK_RUNNERS:
    return None
  master = p.options.view_as(FlinkRunnerOptions).flink_master
  if not master or master in _MAGIC_MASTERS:
    return None
  cloud = p.options.view_as(GoogleCloudOptions)
  if not cloud.job_name:
    cloud.job_name = f'image-inference-{p.run_id}'  # to find the job among the cluster's
  if getattr(p, 'flink_job', None) is None:
    p.flink_job = FlinkJob(master, cloud.job_name)  # one per run: it keeps the job's id once found
  return p.flink_job


@contextlib.contextmanager
def shown(p, inputs: Sequence[tuple], every_seconds: float, stream=None) -> Iterator[None]:
  """While inside (p.run() and the wait for it), the job's progress on stderr, when the runner lets it be seen:
  `inputs` are the planned (pattern, format) pairs, `every_seconds` the plain lines' interval."""
  folder, previous, counts, poll = None, os.environ.get(FOLDER_ENV), None, LOCAL_POLL_SECONDS
  if local_defaults.local_workers(p.options) is not None:
    folder = tempfile.mkdtemp(prefix='image-inference-progress-')
    os.environ[FOLDER_ENV] = folder  # the worker processes, started by p.run(), inherit it
    counts = functools.partial(folder_counts, folder)
  elif (job := flink_job(p)) is not None:
    counts, poll = FlinkCounts(job), FLINK_POLL_SECONDS
  live = Live(counts, inputs, progress_view.for_stream(every_seconds, stream), poll) if counts else None
  finished = False
  try:
    yield
    finished = True
  finally:
    if live is not None:
      live.close(finished)
    if folder is not None:
      if previous is None:
        os.environ.pop(FOLDER_ENV, None)
      else:
        os.environ[FOLDER_ENV] = previous
      shutil.rmtree(folder, ignore_errors=True)
