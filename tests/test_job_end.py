"""pipeline/job_end.py: the wait ends when Flink's REST API says FINISHED, with the job's counters, or when Beam's
result ends it first (raising what it raises). Flink's REST API is a stand-in serving the JSON a real one does
(tests/test_flink.py runs the real cluster, whose summaries come through this path)."""
import threading

import pytest

from pipeline import job_end, live_progress
from tests import flink_rest


@pytest.fixture(name='flink')
def flink_fixture():
  """A stand-in REST API with one job, 'ours', whose state the test sets (flink.finish())."""
  metrics = [{'urn': 'beam:metric:user:sum_int64:v1', 'payload': flink_rest.payload(count),
              'labels': {'NAMESPACE': 'records_read_by_worker', 'NAME': worker}}
             for worker, count in (('vm:1', 4), ('vm:2', 2))]
  answers = {'/jobs/overview': {'jobs': [{'jid': 'j1', 'name': 'ours', 'start-time': 1}]},
             '/jobs/j1/status': {'status': 'RUNNING'}, '/jobs/j1': {'state': 'RUNNING'},
             '/jobs/j1/accumulators': flink_rest.accumulators(metrics)}

  class Flink:
    job = None

    @staticmethod
    def finish():
      answers.update({'/jobs/j1/status': {'status': 'FINISHED'}, '/jobs/j1': {'state': 'FINISHED'}})

  with flink_rest.serve(answers) as master:
    Flink.job = live_progress.FlinkJob(master, 'ours')
    yield Flink


class _Result:
  """What the wait asks of Beam's result: wait_until_finish, which blocks until `end` is set, then raises
  `error` if there is one."""

  def __init__(self, error=None):
    self.end, self.error = threading.Event(), error

  def wait_until_finish(self):
    self.end.wait()
    if self.error:
      raise self.error


def test_flink_saying_finished_ends_the_wait_with_the_jobs_counters(flink):
  flink.finish()
  result = _Result()  # Beam's job server has not noticed yet
  assert job_end.wait(result, flink.job, 'records_read_by_worker') == {
      'records_read_by_worker/vm:1': 4, 'records_read_by_worker/vm:2': 2}


def test_beams_result_ends_the_wait_and_its_failure_is_raised(flink):
  result = _Result(RuntimeError('Pipeline failed'))
  threading.Timer(0.5, result.end.set).start()  # Flink still says RUNNING (restarting, say)
  with pytest.raises(RuntimeError, match='Pipeline failed'):
    job_end.wait(result, flink.job, 'records_read_by_worker')
  ended = _Result()
  ended.end.set()
  assert job_end.wait(ended, flink.job, 'records_read_by_worker') is None
  assert job_end.wait(ended, None, 'records_read_by_worker') is None  # not on Flink: Beam's result alone
