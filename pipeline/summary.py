"""The run summary: what came in, what went out, how fast; from the job's Beam metrics."""
import json
import logging
from typing import Dict

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter

from transforms import inputs, write


def _counters(result) -> Dict[str, int]:
  totals: Dict[str, int] = {}
  for counter in result.metrics().query(MetricsFilter())['counters']:
    value = counter.committed if counter.committed is not None else counter.attempted
    key = f'{counter.key.metric.namespace}/{counter.key.metric.name}'
    totals[key] = totals.get(key, 0) + (value or 0)
  return totals


def summarize(result, wall_seconds: float) -> dict:
  counters = _counters(result)
  errors = {k.split('/', 1)[1]: v for k, v in counters.items() if k.startswith('errors/')}
  rows = counters.get('images/rows_written', 0)
  worker_prefix = inputs.WORKERS_NAMESPACE + '/'
  by_worker = sorted((v for k, v in counters.items() if k.startswith(worker_prefix)), reverse=True)
  return {
      'records_read': counters.get('images/records_read', 0),
      'rows_written': rows,
      'errors': sum(errors.values()),
      'errors_by_stage': errors,
      'records_read_by_worker': by_worker,
      'wall_seconds': round(wall_seconds, 3),
      'images_per_second': round(rows / wall_seconds, 2) if wall_seconds > 0 else None,
  }


def write_summary(output: str, summary: dict) -> str:
  path = FileSystems.join(output, write.SUMMARY_FILE)
  with FileSystems.create(path) as f:
    f.write(json.dumps(summary, indent=2, sort_keys=True).encode('utf-8'))
  logging.info('summary written to %s', path)
  return path
