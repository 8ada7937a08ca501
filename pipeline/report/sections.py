"""The report's sections, each from the aggregates of one pass (aggregate.py); the sample sizes are stated."""
from typing import Dict, List

import numpy as np

from pipeline.report import aggregate, charts
from pipeline.report.page import esc, key_values, note, number, section, sheet, table

TOP_LABELS = 30  # in the label distribution
SHEET_LABELS = 8  # frequent labels given thumbnails
_RUN_KEYS = ('input', 'input_format', 'model', 'task', 'labels_file', 'top_k')


def _share(count: int, total: int) -> str:
  return f'{count / total:.1%}' if total else '-'


def run_section(run: dict) -> str:
  summary, job = run['summary'], run['job']
  read, rows, errors = summary.get('records_read'), summary.get('rows_written'), summary.get('errors')
  pairs = [('output', run['output'])] + [(key, job[key]) for key in _RUN_KEYS if job.get(key) is not None]
  pairs += [('records read', read, 'records_read'), ('rows', rows, 'rows_written'),
            ('error rows', errors, 'error_rows'), ('accounted', summary.get('accounted'), 'accounted'),
            ('images per second', summary.get('images_per_second', '(not measured: launch not waited for)')),
            ('wall seconds', summary.get('wall_seconds', '-'))]
  for key in ('unread', 'stopped'):  # what storage would not give; where a damaged file could be read no further
    if summary.get(key):
      pairs.append((key, ', '.join(summary[key][:5]) + (' ...' if len(summary[key]) > 5 else '')))
  if summary.get('skipped_files'):  # left out by name: not records, but the user should know
    pairs.append(('skipped files', ', '.join(f'{ext} {n}' for ext, n in sorted(summary['skipped_files'].items()))
                  + ' (e.g. ' + ', '.join(summary.get('skipped_examples', [])[:3]) + ')'))
  for key, title in (('unused_members', 'unused tar members'), ('passthrough_nulls', 'passthrough values nulled')):
    if summary.get(key):  # not records: what no row holds, or holds as null
      pairs.append((title, ', '.join(f'{name} {n}' for name, n in sorted(summary[key].items()))))
  if 'resumed' in summary:
    pairs.append(('resumed', ', '.join(f'{k} {v}' for k, v in sorted(summary['resumed'].items()))))
  options = table(['option', 'value'], [[esc(k), esc(v)] for k, v in sorted(job.items())])
  warn = '' if summary.get('accounted') else '<p class=warn>Not every input is accounted for: see unread and stopped.</p>'
  return section('run', 'The run', key_values(pairs), warn,
                 f'<details><summary>All options (job.json)</summary>{options}</details>')


def labels_section(p: aggregate.Predictions) -> str:
  if not p.label_column:
    return section('labels', 'Labels', note('This run did not classify (no top_classes column).'))
  counts = p.label_counts()
  top = counts[:TOP_LABELS]
  rows = [[esc(label), number(count), _share(count, p.rows)] for label, count in top]
  chart = charts.label_bars([label for label, _ in top], [count for _, count in top]) if top else ''
  return section('labels', f'Top-1 labels: the {len(top)} most frequent of {len(counts):,}', chart,
                 table(['label', 'rows', 'share'], rows, numeric=(1, 2), attrs='id="label-table"'),
                 note(f'Exact counts over all {p.rows:,} rows.'))


def scores_section(p: aggregate.Predictions) -> str:
  if not p.has_scores:
    return ''
  edges = np.linspace(0.0, 1.0, aggregate.SCORE_BINS + 1)
  callout = (f'<p id="under_half"><b>{p.under_half:,}</b> rows ({_share(p.under_half, p.rows)}) have a top-1 '
             'score under 0.5.</p>')
  return section('scores', 'Top-1 scores', callout, charts.score_histogram(p.score_hist.tolist(), edges.tolist()),
                 note(f'Exact histogram over all {p.rows:,} rows, {aggregate.SCORE_BINS} bins.'))


def sheet_rows(p: aggregate.Predictions) -> List[dict]:
  """The sampled rows of the most frequent labels, most frequent label first, best score first."""
  if not p.label_column:
    return []
  codes = {name: code for code, name in enumerate(p.labels.names)}
  rank = {codes[label]: i for i, (label, _) in enumerate(p.label_counts()[:SHEET_LABELS])}
  rows = [r for r in p.by_label.table().to_pylist() if r['label'] in rank]
  return sorted(rows, key=lambda r: (rank[r['label']], -(r.get('score') or 0), r['id']))


def sheet_section(p: aggregate.Predictions, thumbs: Dict[str, tuple]) -> str:
  rows = sheet_rows(p)
  if not rows:
    return ''
  parts, counts = [], dict(p.label_counts())
  for code in dict.fromkeys(r['label'] for r in rows):
    label = p.labels.names[code]
    parts.append(f'<h3>{esc(label)} <span class=note>({counts[label]:,} rows)</span></h3>')
    parts.append(sheet([r for r in rows if r['label'] == code], thumbs))
  return section('sheet', 'Contact sheet: the most frequent labels',
                 note(f'Up to {aggregate.PER_LABEL} rows per label, sampled uniformly at random among the '
                      f'label\'s rows, for the {SHEET_LABELS} most frequent labels; id and top-1 score under each.'),
                 *parts)


def lowest_section(p: aggregate.Predictions, thumbs: Dict[str, tuple]) -> str:
  rows = p.lowest.table().to_pylist()
  if not rows:
    return ''
  rows.sort(key=lambda r: (r['score'], r['id']))
  names = p.labels.names if p.label_column else None
  return section('lowest', 'Lowest confidence', note(f'The {len(rows)} rows with the lowest top-1 score among all '
                                                     f'{p.rows:,}, with their top-1 label.'),
                 sheet(rows, thumbs, names))


def errors_section(e: aggregate.Errors, summary: dict) -> str:
  stages = e.by_stage()
  stage_rows = [[esc(stage), f'<span id="stage-{esc(stage)}">{count:,}</span>', _share(count, e.rows)]
                for stage, count in sorted(stages.items())]
  parts = [table(['stage', 'error rows', 'share'], stage_rows, numeric=(1, 2)) if stage_rows
           else '<p>No error rows.</p>']
  for kind in e.by_kind():
    examples = [[esc(r['id']), f'<code>{esc(r["source"])}</code>', esc(r['message'])] for r in kind['examples']]
    parts.append(f'<h3>{esc(kind["stage"])}: {esc(kind["error_type"])} <span class=note>({kind["count"]:,} '
                 f'rows)</span></h3>' + table(['id', 'source', 'message'], examples))
  if summary.get('errors') is not None and summary['errors'] != e.rows:
    parts.append(f'<p class=warn>errors/ holds {e.rows:,} rows, summary.json says {summary["errors"]:,}.</p>')
  return section('errors', f'Errors: {e.rows:,} rows', note(f'Exact counts; the first {aggregate.ERROR_EXAMPLES} '
                                                            'rows of each kind as examples.'), *parts)


def embeddings_section(p: aggregate.Predictions) -> str:
  if not p.embedding_column:
    return ''
  stats = p.norm_stats()
  parts = [key_values([(f'norm {k}', v) for k, v in stats.items()]),
           note(f'Norm statistics exact over all {stats["count"]:,} finite embeddings.')]
  sample = p.map_sample.table()
  if sample.num_rows:
    vectors = np.asarray(sample['vector'].to_pylist(), dtype=np.float64)
    labels = [p.labels.names[c] for c in sample['label'].to_pylist()] if 'label' in sample.column_names else None
    pca = p.map_column == 'embedding_pca'
    points = vectors[:, :2] if pca and vectors.shape[1] >= 2 else charts.principal_components(vectors)
    axes = ('embedding_pca[0]', 'embedding_pca[1]') if pca else ('principal component 1', 'principal component 2')
    parts.append(charts.embedding_map(points, labels, axes))
    source = 'the job\'s embedding_pca column' if pca else 'the first two principal components of the sample'
    parts.append(note(f'Map: {sample.num_rows:,} rows sampled uniformly at random of {p.rows:,}; axes: {source}; '
                      'coloured by top-1 label.'))
  return section('embeddings', 'Embeddings', *parts)


def compare_section(run: dict, other: dict, changes: dict) -> str:
  mine, theirs = run['predictions'], other['predictions']
  names = (run['output'], other['output'])
  parts = [key_values([('rows compared (ids in both)', changes['compared']),
                       ('top-1 label changed', changes['changed'], 'changed_count'),
                       ('rows added (ids only here)', changes['rows']['added']),
                       ('rows lost (ids only in the other)', changes['rows']['lost']),
                       ('error rows added', changes['errors']['added']),
                       ('error rows lost', changes['errors']['lost'])])]
  if mine.label_column and theirs.label_column:
    a, b = dict(mine.label_counts()), dict(theirs.label_counts())
    top = sorted(set(a) | set(b), key=lambda label: (-(a.get(label, 0) + b.get(label, 0)), label))[:TOP_LABELS]
    parts.append(charts.compare_bars(top, [a.get(x, 0) for x in top], [b.get(x, 0) for x in top], names))
    parts.append(table(['label', 'this run', 'other run'], [[esc(x), number(a.get(x, 0)), number(b.get(x, 0))]
                                                             for x in top], numeric=(1, 2)))
  if changes['changed_sample']:
    rows = [[esc(r['id']), esc(r['label']), esc(r['label_other'])] for r in changes['changed_sample']]
    parts.append(f'<h3>Ids whose top-1 changed (first {len(rows)} by id)</h3>'
                 + table(['id', 'this run', 'other run'], rows))
  return section('compare', f'Compared with {other["output"]}', *parts,
                 note('Joined by id; added and lost count distinct ids.'))
