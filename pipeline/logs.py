"""What the user sees of the job's logs: our messages, worker warnings and progress, no runner or TF chatter."""
import logging
import os
import re

# TensorFlow's C++ start-up notices (oneDNN, CUDA probing on machines without a GPU) are not the user's business.
# Set before TensorFlow is imported here; worker processes inherit the environment.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from transforms import progress  # pylint: disable=wrong-import-position

# The local runner re-logs every worker message through this logger, as 'Worker: <log entry>'.
_WORKER_LOGS = 'apache_beam.runners.portability.local_job_service'
_WORKER_MESSAGE = re.compile(r'message: "(' + re.escape(progress.MARK) + r'[^"]*)"')
# The Flink runner re-logs each line its Java job server prints through this logger, all at INFO.
_JOB_SERVER_LOGS = 'FlinkJarJobServer'
_JOB_SERVER_LEVEL = re.compile(r'^\[[^\]]*\] (TRACE|DEBUG|INFO|WARN|ERROR) ')
_JOB_SERVER_MILESTONE = re.compile(r'Submitting job|Execution finished')


def _worker_log_filter(record: logging.LogRecord) -> bool:
  """Lets worker errors through, and worker progress as a plain line; drops the rest."""
  if record.levelno >= logging.ERROR:
    return True
  match = _WORKER_MESSAGE.search(record.getMessage())
  if match:
    record.msg, record.args = match.group(1), ()
  return bool(match)


class _JobServerLogFilter(logging.Filter):
  """Lets the job server's warnings and errors through (stack traces included), and the lines that say
  which Flink job runs; drops the rest, such as its dump of every metric at the end."""

  def __init__(self):
    super().__init__()
    self._level = 'INFO'  # a line without a level (a stack trace's) continues the previous one

  def filter(self, record: logging.LogRecord) -> bool:
    line = record.getMessage()
    match = _JOB_SERVER_LEVEL.match(line)
    if match:
      self._level = match.group(1)
    if self._level in ('WARN', 'ERROR'):
      record.levelno, record.levelname = logging.WARNING, 'WARNING'
      return True
    return bool(match and _JOB_SERVER_MILESTONE.search(line))


def configure() -> None:
  """Our messages and worker progress at INFO; Beam's own chatter only from WARNING up."""
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  logging.getLogger('apache_beam').setLevel(logging.WARNING)
  worker_logs = logging.getLogger(_WORKER_LOGS)
  worker_logs.setLevel(logging.INFO)
  worker_logs.addFilter(_worker_log_filter)
  logging.getLogger(_JOB_SERVER_LOGS).addFilter(_JobServerLogFilter())


