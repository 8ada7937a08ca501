"""Resume (--resume): a crashed or stopped job continues where it was, skipping whole committed read units.

Inside the job (not in the launcher, and not in the job graph: it stays the
same size however much was done), the committed units' markers are listed,
`_units/*.json`, and each planned unit looks its key up among them (a side
input of one pair per unit, not per record), where it was planned: image
units on the worker that listed them. A planned unit whose marker is still good
(same fingerprint, its parts present with the rows it counts:
markers.still_committed) is skipped without opening its input, and its marker
is kept for the tally; the others are read. No worker holds a set of finished
records. A marker whose unit
is no longer planned (its input went away) is not kept; the commit deletes it
and its parts, so the output is what one clean run over the inputs writes.
"""
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import progress
from transforms.output import files, markers, tally
from transforms.output.layout import Layout, marker_key
from transforms.read import units

SKIPPED_TAG = 'skipped'


def list_committed(layout: Layout) -> Iterable[tuple]:
  """(unit key, its marker paths) for every unit with a marker under the output: more than one where a run died
  before its commit deleted the attempts it did not keep."""
  found: Dict[str, List[str]] = {}
  for path in files.list_files(files.join(layout.units, '*.json')):
    found.setdefault(marker_key(files.basename(path)), []).append(path)
  return [(key, tuple(sorted(paths))) for key, paths in found.items()]


class _Decide(beam.DoFn):
  """A planned unit -> itself, to read, or the marker an earlier run committed for it, on 'skipped'."""

  def __init__(self, layout: Layout):
    self._layout = layout
    self._skipped = Metrics.counter('resume', 'skipped_units')

  def finish_bundle(self):
    progress.flush()  # the launcher's line counts the kept records before the job ends

  def process(self, unit: units.Unit, committed: Dict[str, tuple]) -> Iterable:
    found = (markers.still_committed(self._layout, path, unit.fingerprint)
             for path in committed.get(units.unit_key(unit.name), ()))
    kept = next((marker for marker in found if marker is not None), None)
    if kept is None:
      yield unit
      return
    self._skipped.inc()
    progress.skipped(kept['records'])  # done already: the launcher's line counts them
    yield beam.pvalue.TaggedOutput(SKIPPED_TAG, kept)


def committed_markers(pipeline: beam.Pipeline, layout: Layout, label: str = 'Committed') -> beam.PCollection:
  """(unit key, marker paths) of every unit with a marker under the output, listed inside the job."""
  return (pipeline
          | f'{label}Output' >> beam.Create([layout])
          | f'{label}Markers' >> beam.FlatMap(list_committed))


class SkipCommitted(beam.PTransform):
  """Planned units -> {'units': the units to read, 'skipped': the markers kept}; `committed`:
  committed_markers(), a side input of one (key, paths) per committed unit (a unit holds about a thousand
  records: at 10^8 records, 10^5 pairs), so that no file and no unit waits for a grouping."""

  def __init__(self, layout: Layout, committed: beam.PCollection):
    super().__init__()
    self._layout = layout
    self._committed = committed

  def expand(self, planned):
    decided = planned | 'Decide' >> beam.ParDo(_Decide(self._layout), beam.pvalue.AsDict(self._committed)
                                               ).with_outputs(SKIPPED_TAG, main='units')
    # A PCollection of its own for the skipped markers: as a side input, a multi-output DoFn's output gets the
    # others' elements on Beam's BundleBasedDirectRunner (2.77; tests/test_retries.py runs on it).
    skipped = decided[SKIPPED_TAG] | 'Skipped' >> beam.Map(lambda marker: marker)
    return {'units': decided.units, SKIPPED_TAG: skipped}


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
