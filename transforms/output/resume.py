"""Resume (--resume): a crashed or stopped job continues where it was instead of starting over.

Every run checkpoints its rows as it goes (checkpoint.py). A resumed run reads
back everything earlier runs finished (layout.previous_files), keeps one row
per input (a retried bundle may have checkpointed twice), skips those inputs
as soon as they are read, and writes the earlier rows again with its own into
the final datasets, so the result is the output one clean run would have
written. An input is matched by its (id, source) pair: the source alone
locates a record, and the id makes sure it is the same record.
"""
import logging
from typing import Dict, Iterable, List, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import elements
from transforms.output import tally
from transforms.output.checkpoint import Checkpoint
from transforms.output.layout import DATASETS, ERRORS_DIR, PREDICTIONS_DIR, Layout

SKIPPED_TAG = 'skipped'


def key(item) -> tuple:
  """(id, source) of a row, an error row, an EncodedImage or an ErrorRecord."""
  if isinstance(item, dict):
    return (item['id'], item['source'])
  ref = item.ref if isinstance(item, elements.EncodedImage) else item
  return (ref.id, ref.source)


class _ReadRows(beam.DoFn):
  """A finished file of an earlier run -> its rows; a file that cannot be read only costs redoing its work."""

  def __init__(self, columns: Sequence[str]):
    self._columns = list(columns)
    self._unreadable = Metrics.counter('resume', 'unreadable_files')

  def process(self, path: str) -> Iterable[dict]:
    try:
      with FileSystems.open(path, compression_type='uncompressed') as f:
        table = pq.read_table(f, columns=self._columns)
    except Exception as e:  # pylint: disable=broad-except
      self._unreadable.inc()
      logging.warning('resume: %s is unreadable, its inputs are done again: %s', path, e)
      return
    yield from table.to_pylist()


class _ReadPrevious(beam.PTransform):
  """Rows of one dataset that earlier runs finished, one per input."""

  def __init__(self, paths: Sequence[str], columns: Sequence[str]):
    super().__init__()
    self._paths = list(paths)
    self._columns = list(columns)

  def expand(self, pbegin):
    return (pbegin
            | 'Files' >> beam.Create(self._paths)
            | 'Spread' >> beam.Reshuffle()
            | 'Rows' >> beam.ParDo(_ReadRows(self._columns))
            | 'ByInput' >> beam.Map(lambda row: (key(row), row))
            | 'Group' >> beam.GroupByKey()
            | 'OnePerInput' >> beam.MapTuple(lambda _, rows: next(iter(rows))))


class ReadEarlier(beam.PTransform):
  """pbegin -> {dataset: the rows earlier runs finished}, from their files listed at launch."""

  def __init__(self, previous: Dict[str, List[str]], columns: Dict[str, Sequence[str]]):
    super().__init__()
    self._previous = previous
    self._columns = columns

  def expand(self, pbegin):
    return {name: pbegin | f'Previous_{name}' >> _ReadPrevious(self._previous[name], self._columns[name])
            for name in DATASETS}


class _SkipDone(beam.DoFn):
  """Drops what an earlier run finished; each drop is a tally key on the 'skipped' output."""

  def __init__(self):
    self._skipped = Metrics.counter('resume', 'skipped_as_done')

  def process(self, item, done) -> Iterable:
    if key(item) in done:
      self._skipped.inc()
      yield beam.pvalue.TaggedOutput(SKIPPED_TAG, tally.SKIPPED)
    else:
      yield item


class _WithEarlierRows(beam.PTransform):
  """A step that needs the rows earlier runs finished (ReadEarlier's output)."""

  def __init__(self, earlier: Dict[str, beam.PCollection]):
    super().__init__()
    self._earlier = earlier


class SkipDone(_WithEarlierRows):
  """(images, read errors) -> (the same without what earlier runs finished, the skips' tally keys)."""

  def expand(self, pcolls):
    images, read_errors = pcolls
    done = beam.pvalue.AsDict(tuple(self._earlier.values())
                              | 'AllPrevious' >> beam.Flatten()
                              | 'DoneKeys' >> beam.Map(lambda row: (key(row), True)))
    kept = [pcoll | label >> beam.ParDo(_SkipDone(), done).with_outputs(SKIPPED_TAG, main='kept')
            for label, pcoll in (('Images', images), ('ReadErrors', read_errors))]
    skipped = tuple(k[SKIPPED_TAG] for k in kept) | 'Skipped' >> beam.Flatten()
    return kept[0].kept, kept[1].kept, skipped


class WithEarlier(_WithEarlierRows):
  """(rows, error rows) -> (with the earlier runs' rows added, their tally keys)."""

  def expand(self, pcolls):
    rows, errors = pcolls
    carried = tuple(tally.count_as(pcoll, f'TallyCarried_{name}', f'{tally.CARRIED}/{name}')
                    for name, pcoll in self._earlier.items()) | 'Carried' >> beam.Flatten()
    rows = (rows, self._earlier[PREDICTIONS_DIR]) | 'Rows' >> beam.Flatten()
    errors = (errors, self._earlier[ERRORS_DIR]) | 'Errors' >> beam.Flatten()
    return rows, errors, carried


class CheckpointRows(beam.PTransform):
  """(rows, error rows) -> checkpoint files under the run's _checkpoints/ folder, as the rows come."""

  def __init__(self, layout: Layout, schemas: Dict[str, pa.Schema], rows_per_file: int):
    super().__init__()
    self._layout = layout
    self._schemas = schemas
    self._rows_per_file = rows_per_file

  def expand(self, pcolls):
    for name, pcoll in zip(DATASETS, pcolls):
      _ = pcoll | f'Checkpoint_{name}' >> beam.ParDo(
          Checkpoint(self._layout.checkpoints(name), self._schemas[name], self._rows_per_file))
    return beam.pvalue.PDone(pcolls[0].pipeline)
