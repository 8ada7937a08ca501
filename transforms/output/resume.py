"""Resume (--resume): a crashed or stopped job continues where it was, skipping whole committed read units.

Inside the job (not in the launcher, and not in the job graph: it stays the
same size however much was done), the committed units' markers are listed,
`_units/*.json`, and joined with the planned units by unit key in a
CoGroupByKey. A planned unit whose marker is still good (same fingerprint, its
parts present with the rows it counts: markers.still_committed) is skipped
without opening its input, and its marker is kept for the tally; the others are
read. Memory per worker does not grow with what is finished: no worker holds a
set of finished records, only the one key's group at a time. A marker whose unit
is no longer planned (its input went away) is not kept; the commit deletes it
and its parts, so the output is what one clean run over the inputs writes.
"""
from typing import Iterable, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import progress
from transforms.output import files, markers, tally
from transforms.output.layout import Layout
from transforms.read import units

SKIPPED_TAG = 'skipped'


def list_committed(layout: Layout) -> Iterable[tuple]:
  """(unit key, marker path) of every marker under the output."""
  for path in files.list_files(files.join(layout.units, '*.json')):
    yield files.basename(path)[:-len('.json')], path


class _Decide(beam.DoFn):
  """(key, {'planned': [...], 'committed': [marker paths]}) -> the unit to read, or its marker on 'skipped'."""

  def __init__(self, layout: Layout):
    self._layout = layout
    self._skipped = Metrics.counter('resume', 'skipped_units')

  def finish_bundle(self):
    progress.flush()  # the launcher's line counts the kept records before the job ends

  def process(self, keyed) -> Iterable:
    _, grouped = keyed
    planned = list(grouped['planned'])
    if planned:  # else no longer an input: the commit drops it
      unit = units.grouped_unit(planned)
      kept = [m for m in (markers.still_committed(self._layout, path, unit.fingerprint)
                          for path in grouped['committed']) if m is not None]
      if kept:
        self._skipped.inc()
        progress.skipped(kept[0]['records'])  # done already: the launcher's line counts them
      yield beam.pvalue.TaggedOutput(SKIPPED_TAG, kept[0]) if kept else unit


class JoinUnits(beam.PTransform):
  """(planned items keyed by unit, pbegin) -> {'units': the units to read, 'skipped': markers kept}."""

  def __init__(self, layout: Layout):
    super().__init__()
    self._layout = layout

  def expand(self, planned):
    committed = (planned.pipeline
                 | 'Output' >> beam.Create([self._layout])
                 | 'ListMarkers' >> beam.FlatMap(list_committed))
    joined = ({'planned': planned, 'committed': committed}
              | 'ByUnit' >> beam.CoGroupByKey()
              | 'Decide' >> beam.ParDo(_Decide(self._layout)).with_outputs(SKIPPED_TAG, main='units'))
    # A PCollection of its own for the skipped markers: as a side input, a multi-output DoFn's output gets the
    # others' elements on Beam's BundleBasedDirectRunner (2.77; tests/test_retries.py runs on it).
    skipped = joined[SKIPPED_TAG] | 'Skipped' >> beam.Map(lambda marker: marker)
    return {'units': joined.units, SKIPPED_TAG: skipped}


class CommittedIds(beam.DoFn):
  """A committed unit's marker -> the ids of its rows, in (bucket, ids) lists (tally.DuplicateIds)."""

  def __init__(self, layout: Layout):
    self._layout = layout

  def process(self, marker: dict) -> Iterable[tuple]:
    yield from tally.id_buckets(row['id'] for row in markers.read_rows(self._layout, marker, ['id']))


class ReadCommitted(beam.DoFn):
  """A committed unit's marker -> the rows of its predictions part (only `columns` when given)."""

  def __init__(self, layout: Layout, columns: Optional[List[str]] = None):
    self._layout = layout
    self._columns = columns

  def process(self, marker: dict) -> Iterable[dict]:
    yield from markers.read_rows(self._layout, marker, self._columns)
