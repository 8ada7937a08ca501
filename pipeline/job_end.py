"""The wait for the job's end: Beam's result, or on Flink the JobManager's own word, whichever comes first.

Beam's Flink job server learns that a job ended by polling the JobManager with a
backoff that grows to 2 s (Flink's RestClusterClient): 1.3 s on average after
the end, on every run. The JobManager's REST API says it at once. A job Flink
reports FINISHED has run its commit step (summary.json is written), so the
launcher goes on; `records_read_by_worker` then come from Flink's copy of the
job's Beam counters, the same ones the job server would report. Any other
outcome (a failure, a cancel, a restart) is Beam's result's to report.
"""
import logging
import threading
from typing import Dict, Optional

from pipeline import live_progress

POLL_SECONDS = 0.2


def wait(result, flink_job: Optional[live_progress.FlinkJob], namespace: str) -> Optional[Dict[str, int]]:
  """Returns None when Beam's result ended the wait, or, when Flink said FINISHED first, the job's counters of
  `namespace` by 'namespace/name', as Beam's metrics would give them. Raises what the result raises."""
  if flink_job is None:
    result.wait_until_finish()
    return None
  ended, failed = threading.Event(), []

  def beam() -> None:
    try:
      result.wait_until_finish()
    except BaseException as e:  # pylint: disable=broad-except  # raised in the caller's thread below
      failed.append(e)
    finally:
      ended.set()

  threading.Thread(target=beam, name='beam-result', daemon=True).start()
  while not ended.wait(POLL_SECONDS):
    try:
      if flink_job.state() == 'FINISHED':
        return {f'{namespace}/{name}': value for name, value in flink_job.finished_counters(namespace).items()}
    except Exception as e:  # pylint: disable=broad-except  # a missed poll: Beam's result still ends the wait
      logging.debug('Flink REST API: %s', e)
  if failed:
    raise failed[0]
  return None
