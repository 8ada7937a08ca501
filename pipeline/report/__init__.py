"""The run report: one self-contained HTML page that shows what a job did (docs/report.md).

`python -m pipeline.report OUT [--compare OTHER_OUT] [--output FILE]`, and the
job itself at the end of a run it waited for (--report). Beam-free: pyarrow
aggregates the datasets in one streaming pass (aggregate.py), the sampled
rows' images are read with the job's own format readers (thumbnails.py),
matplotlib draws the charts (charts.py) and sections.py lays out the page.
"""
import json
from typing import Optional

import pyarrow.fs as pafs

from pipeline.report import aggregate, compare, sections, thumbnails
from pipeline.report import page as html_page

REPORT_FILE = 'report.html'
SUMMARY_FILE, JOB_FILE = 'summary.json', 'job.json'  # as transforms/output/layout.py names them (it needs Beam)


class ReportError(ValueError):
  """An output the report cannot describe (not there, or not complete); the message says which."""


def read_json(uri: str) -> Optional[dict]:
  fs, path = aggregate.filesystem(uri)
  if fs.get_file_info(path).type != pafs.FileType.File:
    return None
  with fs.open_input_stream(path) as f:
    return json.loads(f.read())


def write_text(uri: str, text: str) -> None:
  fs, path = aggregate.filesystem(uri)
  with fs.open_output_stream(path) as f:
    f.write(text.encode('utf-8'))


def _load(output: str, samples: bool) -> dict:
  summary = read_json(f'{output}/{SUMMARY_FILE}')
  if summary is None:
    raise ReportError(f'{output} has no {SUMMARY_FILE}: not a finished run (the output is complete once the job '
                      'wrote it)')
  job = read_json(f'{output}/{JOB_FILE}') or {}
  return {'output': output, 'summary': summary, 'job': job,
          'predictions': aggregate.Predictions(f'{output}/predictions', samples=samples),
          'errors': aggregate.Errors(f'{output}/errors')}


def build(output: str, other: Optional[str] = None) -> str:
  """The report's HTML for the finished output at `output` (local or gs://), compared with `other` if given."""
  output = output.rstrip('/')
  run = _load(output, samples=True)
  predictions = run['predictions']
  wanted = [row['source'] for row in sections.sheet_rows(predictions)] + \
      [row['source'] for row in predictions.lowest.table().to_pylist()]
  job = run['job']
  thumbs = thumbnails.thumbnails(wanted, job.get('image_key'), job.get('compression') or 'auto')
  parts = [sections.run_section(run), sections.labels_section(predictions), sections.scores_section(predictions),
           sections.sheet_section(predictions, thumbs), sections.lowest_section(predictions, thumbs),
           sections.errors_section(run['errors'], run['summary']), sections.embeddings_section(predictions)]
  if other:
    other = other.rstrip('/')
    theirs = _load(other, samples=False)
    changes = compare.compare(output, other, predictions.label_column, theirs['predictions'].label_column)
    parts.append(sections.compare_section(run, theirs, changes))
  return html_page.document(f'Run report: {output}', [part for part in parts if part])


def write_report(output: str, other: Optional[str] = None, path: Optional[str] = None) -> str:
  """Builds the report and writes it (default OUT/report.html); returns where."""
  target = path or f'{output.rstrip("/")}/{REPORT_FILE}'
  write_text(target, build(output, other))
  return target
