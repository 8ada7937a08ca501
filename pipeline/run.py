"""Entry point: validate options, inspect the model, run the job, report."""
import json
import logging
import os
import re
import sys
import time
from typing import List, Optional, Tuple

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # keep TF's start-up chatter out of the user's logs

import apache_beam as beam  # pylint: disable=wrong-import-position
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions  # pylint: disable=wrong-import-position

from pipeline import graph, options, summary  # pylint: disable=wrong-import-position
from transforms import labels as labels_lib  # pylint: disable=wrong-import-position
from transforms import gcs_auth, model_files, models, output, progress, read  # pylint: disable=wrong-import-position

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


def configure_logging() -> None:
  """Our messages and worker progress at INFO; Beam's own chatter only from WARNING up."""
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  logging.getLogger('apache_beam').setLevel(logging.WARNING)
  worker_logs = logging.getLogger(_WORKER_LOGS)
  worker_logs.setLevel(logging.INFO)
  worker_logs.addFilter(_worker_log_filter)
  logging.getLogger(_JOB_SERVER_LOGS).addFilter(_JobServerLogFilter())


def inspect_model(config: options.JobConfig) -> models.ModelInfo:
  """Loads the model once here so that a wrong model or labels file fails now, not on every worker."""
  info = model_files.load(config.model).info
  options.check_model_fit(config, info)
  if config.labels:
    labels_lib.load_labels(config.labels, info.num_classes)
  return info


def prepare(argv: List[str]) -> Tuple[beam.Pipeline, options.JobConfig]:
  """Everything before submission: options checked, inputs planned, model inspected, the job built."""
  pipeline_options = PipelineOptions(argv)
  options.apply_local_defaults(argv, pipeline_options)
  gcs_auth.apply(pipeline_options)  # gs:// access for checks and model copies made here, and on workers
  config = options.validate(pipeline_options)
  input_plan = read.plan(config.inputs, config.input_format, config.read_settings, config.passthrough_keys)
  logging.info('inputs: %s', ', '.join(f'{pattern} ({fmt})' for pattern, fmt in input_plan.inputs))
  info = inspect_model(config)
  logging.info('model %s: %s, input %s', config.model.location, info.format, info.input_size)
  layout = output.Layout(config.output, output.new_run_id())
  previous = None
  if not pipeline_options.view_as(TestOptions).dry_run:  # a dry run writes nothing, not even job.json
    job = dict(config.shaping_options(), **{output.MODEL_DIGEST: model_files.fingerprint(config.model.location)})
    previous = output.claim(config.output, config.output_mode, job)
  p = beam.Pipeline(options=pipeline_options)
  graph.build(p, config, info, input_plan, layout, previous)
  return p, config


def run(argv: Optional[List[str]] = None) -> dict:
  """Runs the job to completion and returns its summary; raises OptionsError/ModelError on bad input."""
  p, config = prepare(list(sys.argv[1:] if argv is None else argv))
  start = time.monotonic()
  result = p.run()
  if p.options.view_as(TestOptions).dry_run:  # translated for the runner, nothing submitted
    return {'dry_run': True, 'runner': type(p.runner).__name__}
  result.wait_until_finish()
  report = summary.complete(config.output, result, time.monotonic() - start)
  if config.analysis:
    from transforms import analyze  # pylint: disable=import-outside-toplevel  # tf.Transform only when asked
    report['embedding_analysis'] = analyze.finish(config.output, config.analysis.pca_dims, config.analysis.whiten,
                                                  config.analysis.temp_dir)
  summary.write_summary(config.output, report)
  return report


def main(argv: Optional[List[str]] = None) -> int:
  configure_logging()
  try:
    report = run(argv)
  except (options.OptionsError, read.InputError, models.ModelError, output.OutputError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(report, indent=2, sort_keys=True))
  return 0
