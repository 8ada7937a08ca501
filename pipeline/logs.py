"""What the user sees of the job's logs: our messages, worker warnings and progress, no runner or TF chatter.

TensorFlow's native notices are handled where TensorFlow is loaded (transforms/native_logs.py).
"""
import codecs
import logging
import re

from transforms import progress

# The local runner re-logs every worker message through this logger, as 'Worker: <log entry as proto text>',
# at the entry's own level.
_WORKER_LOGS = 'apache_beam.runners.portability.local_job_service'
_WORKER_FIELD = r' {}: "((?:[^"\\]|\\.)*)"'  # a string field of the entry: message, trace
_BEAM_SOURCE = '/apache_beam/'  # in a worker entry's log_location: logged by Beam itself
# The Flink runner re-logs each line its Java job server prints through this logger, all at INFO.
_JOB_SERVER_LOGS = 'FlinkJarJobServer'
_JOB_SERVER_LEVEL = re.compile(r'^\[[^\]]*\] (TRACE|DEBUG|INFO|WARN|ERROR) ')
_JOB_SERVER_MILESTONE = re.compile(r'Submitting job|Execution finished')


def _worker_log_filter(record: logging.LogRecord) -> bool:
  """Lets worker errors, warnings (but Beam's own) and progress through as plain lines ('worker: <message>');
  drops the rest: Beam's INFO chatter and its start-up warnings, repeated by every worker."""
  entry = record.getMessage()
  text = _field(entry, 'message')
  if text is not None and text.startswith(progress.MARK):
    record.msg, record.args = text, ()
    return True
  if record.levelno < logging.WARNING:
    return False
  if record.levelno < logging.ERROR and _BEAM_SOURCE in (_field(entry, 'log_location') or ''):
    return False
  if text is not None:
    trace = _field(entry, 'trace')
    record.msg, record.args = 'worker: %s', (text + (f'\n{trace}' if trace else ''),)
  return True


def _field(entry: str, name: str):
  """A string field of a log entry in proto text format, unescaped; None when absent."""
  match = re.search(_WORKER_FIELD.format(name), entry)
  if not match:
    return None
  return codecs.escape_decode(match.group(1).encode('utf-8'))[0].decode('utf-8', 'replace')


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
  """Our messages and worker progress at INFO; Beam's and TensorFlow's own chatter only from WARNING up."""
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  for chatty in ('apache_beam', 'tensorflow', 'absl'):  # TensorFlow logs its model loading at INFO
    logging.getLogger(chatty).setLevel(logging.WARNING)
  worker_logs = logging.getLogger(_WORKER_LOGS)
  worker_logs.setLevel(logging.INFO)
  worker_logs.addFilter(_worker_log_filter)
  logging.getLogger(_JOB_SERVER_LOGS).addFilter(_JobServerLogFilter())


