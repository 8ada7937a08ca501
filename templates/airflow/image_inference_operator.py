"""The operator of image_inference_dags.py's Beam DAG; copy it into Airflow's dags folder beside that file.

BeamPipelineOperator is the provider's BeamRunPythonPipelineOperator (apache-airflow-providers-apache-beam) plus
two things a scheduled job needs, which the provider's operator does not do:
- a task that fails, times out or is killed stops the pipeline (the provider's operator would leave it running);
- a failed job fails the task with the job's own reason, its `error: ...` line or else its last line (not
  "Apache Beam process failed with return code N"), and a launch the job refused (exit code 2) that no later
  attempt can get past fails without retries (AirflowFailException), while one a later attempt can (a held
  output, an input not there yet) is retried. See templates/airflow/README.md (Failures, retries, timeouts).
"""
import json
import re
import time
import urllib.request
from typing import List, Optional

import psutil
from airflow.providers.apache.beam.hooks.beam import BeamHook
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

FLINK_DONE = ('FINISHED', 'CANCELED', 'FAILED')  # Flink's terminal job states
STOP_GRACE_SECONDS = 60  # for the launcher to cancel its job and end its workers after SIGTERM
REFUSED = 2  # the job's exit code for a launch it refuses before any work (docs/options.md)
# The refusals a later attempt may get past, by the job's message: the output's lease is held by a run that may
# yet end or die, or could not be taken or written (transforms/output/lease.py, claim.py); the input has no files
# yet, a late drop (transforms/read/plan.py). Any other refusal (bad options, a missing model or labels file, a
# --resume over an output written with other options or another model) is the same on every attempt.
RETRYABLE_REFUSALS = ('is in use by run', 'could not take its lease', 'cannot write to --output',
                      '--input matches no files')
_EXIT_CODE = re.compile(r'failed with return code (-?\d+)')  # the provider's message (hooks/beam.py)


def cancel_flink_jobs(flink_master: str, job_name: str, timeout: float = 10) -> List[str]:
  """Cancels the Flink jobs named job_name that have not ended (Flink's REST API: GET /jobs/overview, then
  PATCH /jobs/<id>?mode=cancel); returns their ids."""
  base = (flink_master if '://' in flink_master else f'http://{flink_master}').rstrip('/')
  with urllib.request.urlopen(f'{base}/jobs/overview', timeout=timeout) as response:
    jobs = json.load(response).get('jobs', [])
  cancelled = []
  for job in jobs:
    if job.get('name') == job_name and job.get('state') not in FLINK_DONE:
      request = urllib.request.Request(f'{base}/jobs/{job["jid"]}?mode=cancel', method='PATCH')
      urllib.request.urlopen(request, timeout=timeout).close()  # pylint: disable=consider-using-with
      cancelled.append(job['jid'])
  return cancelled


def job_failure(exit_code: int, error: Optional[str], last_line: Optional[str]) -> AirflowException:
  """What fails the task when the job exits with exit_code, having said why in its `error: ...` line (error, the
  text after `error: `), or not (last_line, the last it printed: a traceback's ends with the exception).
  AirflowFailException (no retries) for a refusal no later attempt gets past, else AirflowException."""
  if exit_code == REFUSED and error is not None:
    if any(text in error for text in RETRYABLE_REFUSALS):
      return AirflowException(f'the job refused to start (exit code 2), to be retried: {error}')
    return AirflowFailException(f'the job refused to start (exit code 2), not retried: {error}')
  if error is not None:
    return AirflowException(f'the job failed (exit code {exit_code}): {error}')
  return AirflowException(f'the job failed (exit code {exit_code}); its last line: {last_line}')


class JobHook(BeamHook):
  """The provider's hook, keeping what the job said last: the reason it prints before it exits, its `error: ...`
  line, and its last line."""
  error: Optional[str] = None
  last_line: Optional[str] = None

  def start_python_pipeline(self, *args, process_line_callback=None, **kwargs):  # pylint: disable=arguments-differ
    def keep(line: str) -> None:
      if line.strip():
        self.last_line = line.strip()
      if line.startswith('error: '):
        self.error = line[len('error: '):].strip()
      if process_line_callback:
        process_line_callback(line)
    return super().start_python_pipeline(*args, process_line_callback=keep, **kwargs)


def _signal(process: psutil.Process, send) -> None:
  try:
    send(process)
  except psutil.NoSuchProcess:
    pass


def _running(process: psutil.Process) -> bool:
  try:
    return process.status() != psutil.STATUS_ZOMBIE
  except psutil.NoSuchProcess:
    return False


def _wait_ended(processes: List[psutil.Process], timeout: float) -> List[psutil.Process]:
  """Waits up to timeout for the processes to end; returns those still running. Never reaps: the launcher, a
  child of the task, stays a zombie until the hook's Popen reads its exit code (psutil.wait_procs would reap it,
  and Popen would then report 0, a success, for a job stopped by the kill)."""
  deadline = time.monotonic() + timeout
  while [p for p in processes if _running(p)] and time.monotonic() < deadline:
    time.sleep(0.2)
  return [p for p in processes if _running(p)]


class BeamPipelineOperator(BeamRunPythonPipelineOperator):
  """Stops the pipeline when the task fails, times out or is killed, and fails with the job's reason.

  Stopping: first SIGTERM to the launcher (`python -m pipeline`), which cancels the job it submitted (on Flink,
  through Beam's job server) and ends its local workers, and exits (pipeline/stopping.py); then whatever is left
  of its process tree is terminated, then killed; last, on Flink, a job of this run still running is cancelled
  through Flink's REST API, should the launcher not have got to it.
  """

  def _init_pipeline_options(self, *args, **kwargs):
    options = super()._init_pipeline_options(*args, **kwargs)
    self.beam_hook = JobHook(runner=self.runner)  # the provider's execute() creates its hook here
    return options

  def execute(self, context):
    self._before = {p.pid for p in psutil.Process().children()}
    try:
      return super().execute(context)
    except AirflowException as e:
      code = _EXIT_CODE.search(str(e))
      if code is None or isinstance(e, AirflowFailException):
        raise
      hook = self.beam_hook
      raise job_failure(int(code.group(1)), getattr(hook, 'error', None), getattr(hook, 'last_line', None)) from e
    finally:
      self._stop_pipeline()

  def on_kill(self):
    self._stop_pipeline()
    super().on_kill()

  def _stop_pipeline(self) -> None:
    launchers, tree = [], []
    for child in psutil.Process().children():
      if child.pid not in getattr(self, '_before', ()):
        try:
          tree += [child] + child.children(recursive=True)
          launchers.append(child)
        except psutil.NoSuchProcess:
          pass
    for group, grace in ((launchers, STOP_GRACE_SECONDS), (tree, 10)):
      for process in group:
        _signal(process, psutil.Process.terminate)
      for process in _wait_ended(group, grace):
        _signal(process, psutil.Process.kill)
    if tree:
      self.log.warning("stopped the pipeline's processes %s", [p.pid for p in tree])
      self._cancel_on_flink()

  def _cancel_on_flink(self) -> None:
    options = self.pipeline_options if isinstance(self.pipeline_options, dict) else {}
    if self.runner != 'FlinkRunner' or not options.get('flink_master') or not options.get('job_name'):
      return
    try:
      cancelled = cancel_flink_jobs(options['flink_master'], options['job_name'])
    except Exception as e:  # pylint: disable=broad-except  # the cluster is gone, or unreachable from here
      self.log.warning('could not check Flink for a job to cancel: %s', e)
      return
    if cancelled:
      self.log.warning('cancelled the Flink job(s) %s', cancelled)
