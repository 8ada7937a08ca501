"""The job's last step: check the staged shards against the tally, move them into place, write summary.json.

It runs inside the job, after both datasets are written, so it happens on every
runner, including a Dataflow template launch whose launcher does not wait.
"""
import logging
from typing import Dict, Iterable, Sequence, Tuple

import apache_beam as beam

from transforms.output import files, lease
from transforms.output.layout import CHECKPOINTS_DIR, DATASETS, ERRORS_DIR, PREDICTIONS_DIR, STAGING_DIR, Layout
from transforms.output.tally import accounting


class CommitError(RuntimeError):
  """The staged datasets do not hold what the job counted: nothing is moved, the staged shards stay."""


class Commit(beam.DoFn):
  """This run's shards replace the datasets, scratch space goes, summary.json comes last.

  It first checks that this run's shards hold exactly the rows and error rows the job tallied, and
  moves nothing otherwise. Idempotent, so that a retry after dying at any point ends as a clean run
  would (runners retry the step): summary.json goes first; this run's shards (part-RUN-...) are
  counted by name, once each, in staging or already moved (a move on GCS is a copy then a delete: a
  shard found in both places counts once and its staged copy is deleted); only this run's and the
  carried runs' (layout.earlier_runs) staging and checkpoints are deleted, and `scratch` (tf.Transform's
  temporary folder). Last, the output's lease is released (lease.py).
  """

  def __init__(self, layout: Layout, scratch: Sequence[str] = ()):
    self._layout = layout
    self._scratch = list(scratch)

  def _shards(self, name: str) -> Tuple[Dict[str, str], Dict[str, str]]:
    """This run's shards of one dataset, by file name: (staged, already moved)."""
    layout = self._layout
    staged = files.list_files(files.join(layout.staging(name), layout.shard_prefix + '*.parquet'))
    moved = files.list_files(files.join(layout.dataset(name), layout.shard_prefix + '*'))
    return {files.basename(p): p for p in staged}, {files.basename(p): p for p in moved}

  def process(self, unused, tally: Dict[str, int], *unused_waits) -> Iterable[str]:
    layout = self._layout
    summary = accounting(tally)
    files.delete_files([layout.summary])  # first: while this step runs, the output reads as incomplete
    expected = {PREDICTIONS_DIR: summary['rows_written'], ERRORS_DIR: summary['errors']}
    shards = {}
    for name in DATASETS:
      staged, moved = shards[name] = self._shards(name)
      found = files.count_rows(sorted({**staged, **moved}.values()))  # a moved copy is whole: it counts
      if found != expected[name]:
        raise CommitError(f'{name}: the job counted {expected[name]} rows but its shards hold {found}; nothing '
                          f'was moved, the staged shards stay under {files.join(layout.output, STAGING_DIR)}')
    for name in DATASETS:
      staged, moved = shards[name]
      folder = layout.dataset(name)
      files.delete_files([p for p in files.list_files(files.join(folder, '*'))
                          if not files.basename(p).startswith(layout.shard_prefix)])  # earlier runs' shards
      for shard, path in sorted(staged.items()):
        if shard in moved:
          files.delete_files([path])  # an interrupted move: the copy is in place
        else:
          files.move(path, files.join(folder, shard))
    for folder in layout.scratch() + self._scratch:
      files.delete_tree(folder)
    for top in (STAGING_DIR, CHECKPOINTS_DIR):
      files.remove_empty_folder(files.join(layout.output, top))
    files.write_json(layout.summary, summary)
    lease.release(layout.output, layout.run_id)
    logging.info('output committed: %s', layout.output)
    yield layout.summary


class CommitOutput(beam.PTransform):
  """Runs Commit once, after the datasets' writes (and anything in `after`) have finished; `scratch`: more
  folders it deletes (tf.Transform's temporary folder), on every runner and filesystem."""

  def __init__(self, layout: Layout, tally, after: Sequence, scratch: Sequence[str] = ()):
    super().__init__()
    self._layout = layout
    self._scratch = list(scratch)
    self._tally = tally
    self._after = list(after)

  def expand(self, pbegin):
    waits = [beam.pvalue.AsList(pcoll) for pcoll in self._after]
    return (pbegin
            | 'Once' >> beam.Create([None])
            | 'Commit' >> beam.ParDo(Commit(self._layout, self._scratch), beam.pvalue.AsDict(self._tally), *waits))
