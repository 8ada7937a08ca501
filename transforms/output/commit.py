"""The job's last step: check the staged shards against the tally, move them into place, write summary.json.

It runs inside the job, after both datasets are written, so it happens on every
runner, including a Dataflow template launch whose launcher does not wait.
"""
import logging
from typing import Dict, Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.output import files
from transforms.output.layout import CHECKPOINTS_DIR, DATASETS, ERRORS_DIR, PREDICTIONS_DIR, STAGING_DIR, Layout
from transforms.output.tally import accounting


class CommitError(RuntimeError):
  """The staged datasets do not hold what the job counted: nothing is moved, the staged shards stay."""


class Commit(beam.DoFn):
  """This run's shards replace the datasets, scratch space goes, summary.json comes last.

  It first checks that the staged shards hold exactly the rows and error rows the job tallied, and
  moves nothing otherwise. Safe to run again after a failure part-way (runners retry it): this run's
  shards carry its id, so those already moved are counted and kept, and only other files are deleted.
  """

  def __init__(self, layout: Layout):
    self._layout = layout

  def process(self, unused, tally: Dict[str, int], *unused_waits) -> Iterable[str]:
    layout = self._layout
    summary = accounting(tally)
    expected = {PREDICTIONS_DIR: summary['rows_written'], ERRORS_DIR: summary['errors']}
    staged = {}
    for name in DATASETS:
      staged[name] = files.list_files(files.join(layout.staging(name), '*.parquet'))
      moved = files.list_files(files.join(layout.dataset(name), layout.shard_prefix + '*'))
      found = files.count_rows(staged[name] + moved)
      if found != expected[name]:
        raise CommitError(f'{name}: the job counted {expected[name]} rows but its shards hold {found}; nothing '
                          f'was moved, the staged shards stay under {files.join(layout.output, STAGING_DIR)}')
    for name in DATASETS:
      folder = layout.dataset(name)
      ours = files.join(folder, layout.shard_prefix)
      files.delete_files([p for p in files.list_files(files.join(folder, '*')) if not p.startswith(ours)])
      if staged[name]:
        if not FileSystems.exists(folder):
          FileSystems.mkdirs(folder)  # local renames need it
        FileSystems.rename(staged[name], [files.join(folder, p.rsplit('/', 1)[-1]) for p in staged[name]])
    files.delete_tree(files.join(layout.output, STAGING_DIR))
    files.delete_tree(files.join(layout.output, CHECKPOINTS_DIR))
    files.write_json(layout.summary, summary)
    logging.info('output committed: %s', layout.output)
    yield layout.summary


class CommitOutput(beam.PTransform):
  """Runs Commit once, after the datasets' writes (and anything in `after`) have finished."""

  def __init__(self, layout: Layout, tally, after: Sequence):
    super().__init__()
    self._layout = layout
    self._tally = tally
    self._after = list(after)

  def expand(self, pbegin):
    waits = [beam.pvalue.AsList(pcoll) for pcoll in self._after]
    return (pbegin
            | 'Once' >> beam.Create([None])
            | 'Commit' >> beam.ParDo(Commit(self._layout), beam.pvalue.AsDict(self._tally), *waits))
