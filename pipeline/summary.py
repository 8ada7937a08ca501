"""The run summary: the job's own exact accounting (written by its commit step) plus how the run went.

The commit step writes summary.json with the counts the job tallied itself
(transforms/output/commit.py); the launcher, when it waits for the job, adds what
only it knows (wall time, speed) and what Beam's metrics tell (how reading
spread over workers).
"""
import logging
from typing import Dict

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from transforms.output import files
from transforms.output.layout import SUMMARY_FILE
from transforms.read import outcomes


def counters(result) -> Dict[str, int]:
  """Beam's counters of a finished job, by 'namespace/name'."""
  totals: Dict[str, int] = {}
  for counter in result.metrics().query(MetricsFilter())['counters']:
    value = counter.committed if counter.committed is not None else counter.attempted
    key = f'{counter.key.metric.namespace}/{counter.key.metric.name}'
    totals[key] = totals.get(key, 0) + (value or 0)
  return totals


def complete(output_prefix: str, counted: Dict[str, int], wall_seconds: float) -> dict:
  """summary.json as the job committed it, with the run's speed and the reads per worker (from the job's
  counters, `counted`) added."""
  report = files.read_json(FileSystems.join(output_prefix, SUMMARY_FILE))
  if report is None:
    raise RuntimeError(f'the job finished but did not commit {output_prefix}: summary.json is missing')
  worker_prefix = outcomes.WORKERS_NAMESPACE + '/'
  resumed = report.get('resumed', {})
  done_here = report['rows_written'] if not resumed else round(
      report['rows_written'] * resumed['redone_records'] / max(report['records_read'], 1))
  report.update({
      'records_read_by_worker': sorted((v for k, v in counted.items() if k.startswith(worker_prefix)),
                                       reverse=True),
      'wall_seconds': round(wall_seconds, 3),
      'images_per_second': round(done_here / wall_seconds, 2) if wall_seconds > 0 else None,
  })
  return report


def write_summary(output_prefix: str, summary: dict) -> str:
  path = FileSystems.join(output_prefix, SUMMARY_FILE)
  files.write_json(path, summary)
  logging.info('summary written to %s', path)
  return path
