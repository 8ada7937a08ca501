"""The job's last step: check the committed units against the tally, drop what no unit keeps, write summary.json.

It runs inside the job, after every unit is committed, so it happens on every
runner, including a Dataflow template launch whose launcher does not wait.
"""
import logging
from typing import Dict, Iterable, List, Sequence, Set

import apache_beam as beam
import pyarrow as pa

from transforms.output import files, lease
from transforms.output.layout import (DATASETS, EMPTY_PART, ERRORS_DIR, MANIFEST_FILE, PREDICTIONS_DIR, STAGING_DIR,
                                      UNIT_PARTS_DIR, Layout, marker_name)
from transforms.output.markers import write_part
from transforms.output.tally import accounting


class CommitError(RuntimeError):
  """The committed units do not hold what the job counted: nothing is deleted or moved."""


class Commit(beam.DoFn):
  """The kept units' parts make the datasets; orphans and scratch space go; summary.json comes last.

  `kept_lists` lists of markers (side inputs) hold the units the output keeps (this run's; with --resume, the
  earlier runs' still good ones); the side inputs after them are waited for. It first checks that they are one per unit, add up to the tally and that their
  parts exist, and changes nothing otherwise. Idempotent, so that a retry after dying at any point ends as a clean run would
  (runners retry the step): summary.json goes first; what it deletes is what no kept marker names (parts of
  failed attempts and of units no longer planned, earlier runs' analysis shards, stale markers), and
  `scratch` (tf.Transform's temporary folder); a dataset without rows gets one empty part so that it reads as
  an empty table. With --analyze_embeddings, predictions/ is the analysis' shards, staged under _staging/RUN/
  and moved into place (a move on GCS is a copy then a delete: a shard found in both places counts once and its
  staged copy is deleted). Last, the output's lease is released (lease.py). It first checks that its run still
  holds the lease (a stopped run's job, left running on a cluster, changes nothing of an output another run
  took over); a retry that finds the lease released and summary.json written has nothing left to do.
  """

  def __init__(self, layout: Layout, schemas: Dict[str, pa.Schema], scratch: Sequence[str] = (),
               kept_lists: int = 2):
    self._layout = layout
    self._kept_lists = kept_lists
    self._schemas = schemas
    self._scratch = list(scratch)

  def _check(self, summary: dict, markers: List[dict]) -> Dict[str, Set[str]]:
    """The part names each dataset keeps, after checking them; raises CommitError."""
    layout = self._layout
    kept: Dict[str, Set[str]] = {name: set() for name in DATASETS}
    keys = [m['key'] for m in markers]
    if len(keys) != len(set(keys)):
      raise CommitError('a read unit was committed twice')
    counted = {PREDICTIONS_DIR: sum(m['rows'] for m in markers),
               ERRORS_DIR: sum(sum(m['errors_by_stage'].values()) for m in markers)}
    expected = {PREDICTIONS_DIR: summary['rows_written'], ERRORS_DIR: summary['errors']}
    for name in DATASETS:
      if counted[name] != expected[name]:
        raise CommitError(f'{name}: the job counted {expected[name]} rows but its units hold {counted[name]}')
      kept[name] = {m['parts'][name] for m in markers if name in m['parts']}
      present = {files.basename(p) for p in files.list_files(files.join(layout.parts(name), '*'))}
      missing = sorted(kept[name] - present)
      if missing:
        raise CommitError(f'{name}: {len(missing)} committed part(s) are missing, e.g. {missing[0]}; nothing '
                          'was deleted')
    if layout.analysis:
      staged, moved = self._shards()
      found = files.count_rows(sorted({**staged, **moved}.values()))  # a moved copy is whole: it counts
      if found != summary['rows_written']:
        raise CommitError(f'the analysis counted {found} rows, the units {summary["rows_written"]}; nothing was '
                          f'moved, the staged shards stay under {files.join(layout.output, STAGING_DIR)}')
    return kept

  def _shards(self):
    """This run's analysis shards of predictions/, by file name: (staged, already moved)."""
    layout = self._layout
    staged = files.list_files(files.join(layout.staging(PREDICTIONS_DIR), layout.shard_prefix + '*.parquet'))
    moved = files.list_files(files.join(layout.dataset(PREDICTIONS_DIR), layout.shard_prefix + '*'))
    return {files.basename(p): p for p in staged}, {files.basename(p): p for p in moved}

  def process(self, unused, tally: Dict[str, int], *kept_and_waits: List) -> Iterable[str]:
    layout = self._layout
    if lease.holder(layout.output) is None and files.read_json(layout.summary) is not None:
      logging.info('output already committed: %s', layout.output)  # a retry after this step released the lease
      yield layout.summary
      return
    lease.seal(layout.output, layout.run_id)  # Lost if a stopped run's; and no unit lands once the commit looked
    markers = [marker for kept in kept_and_waits[:self._kept_lists] for marker in kept]
    summary = accounting(tally)
    files.delete_files([layout.summary, layout.manifest])  # first: while this runs, the output is incomplete
    kept = self._check(summary, markers)
    staged, moved = self._shards() if layout.analysis else ({}, {})
    final = dict(kept)
    if layout.analysis:
      final[PREDICTIONS_DIR] = set(staged) | set(moved)
    for name in DATASETS:
      if not final[name]:
        final[name] = {EMPTY_PART}
      folders = {layout.parts(name): kept[name], layout.dataset(name): final[name]}
      for folder, keep in folders.items():
        files.delete_files([p for p in files.list_files(files.join(folder, '*'))
                            if files.basename(p) not in keep])  # orphans, and earlier runs' shards
    keys = {marker_name(m['key'], m.get('attempt', '')) for m in markers}
    files.delete_files([p for p in files.list_files(files.join(layout.units, '*'))
                        if files.basename(p) not in keys])  # units no longer planned, cut writes
    for shard, path in sorted(staged.items()):
      if shard in moved:
        files.delete_files([path])  # an interrupted move: the copy is in place
      else:
        files.move(path, files.join(layout.dataset(PREDICTIONS_DIR), shard))
    for name in DATASETS:
      empty = files.join(layout.dataset(name), EMPTY_PART)
      if final[name] == {EMPTY_PART} and not files.list_files(empty):
        write_part(layout.dataset(name), EMPTY_PART, [], self._schemas[name])
    for folder in layout.scratch() + self._scratch:
      files.delete_tree(folder)
    for top in (STAGING_DIR, UNIT_PARTS_DIR):
      files.remove_empty_folder(files.join(layout.output, top))
    manifest = {name: sorted(final[name]) for name in DATASETS}
    files.write_json(layout.manifest, manifest)  # what readers of the datasets read (docs/output.md)
    summary['manifest'] = {'file': MANIFEST_FILE, 'parts': {name: len(parts) for name, parts in manifest.items()}}
    files.write_json(layout.summary, summary)
    lease.release(layout.output, layout.run_id)
    logging.info('output committed: %s', layout.output)
    yield layout.summary


class CommitOutput(beam.PTransform):
  """Runs Commit once, after every unit is committed (and anything in `after`); `markers`: the kept units'
  markers (PCollections: per line of reading, this run's and the skipped units'); `scratch`: more folders it deletes (tf.Transform's
  temporary folder), on every runner and filesystem."""

  def __init__(self, layout: Layout, schemas: Dict[str, pa.Schema], tally, markers, after: Sequence,
               scratch: Sequence[str] = ()):
    super().__init__()
    self._layout = layout
    self._schemas = schemas
    self._scratch = list(scratch)
    self._tally = tally
    self._markers = markers
    self._after = list(after)

  def expand(self, pbegin):
    waits = [beam.pvalue.AsList(pcoll) for pcoll in self._after]
    return (pbegin
            | 'Once' >> beam.Create([None])
            | 'Commit' >> beam.ParDo(Commit(self._layout, self._schemas, self._scratch, len(self._markers)),
                                     beam.pvalue.AsDict(self._tally),
                                     *[beam.pvalue.AsList(pcoll) for pcoll in self._markers], *waits))
