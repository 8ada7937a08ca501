"""Write stage: each read unit's rows and error rows become its own Parquet parts, committed by its marker as
soon as the unit is complete (markers.py).

The line from the read to here is one fused chain (transforms/read/units.py),
so a unit's records, and after them its UnitEnd, all arrive at one instance of
this DoFn within the bundle that read the unit (BatchElements, inside
RunInference, flushes its last batch in its finish_bundle, which runs before
this one's). The unit is complete when its rows and error rows number the
records its reader counted; a unit still incomplete when the bundle ends means
something was lost, and the bundle fails so that the runner retries it (the
unit is then written again under another attempt; the parts of a failed attempt
are orphans the commit deletes). Each row is written once, into its unit's part,
as it arrives (markers.UnitParts: a row group at a time, so a unit of 100,000
images holds one row group in memory, not the unit): the parts are the final
dataset.
"""
from typing import Dict, Iterable

import apache_beam as beam
import pyarrow as pa

from transforms import format as format_stage
from transforms.output import markers, tally
from transforms.output.layout import DATASETS, PREDICTIONS_DIR, Layout
from transforms.read.units import unit_key


class UnitIncomplete(RuntimeError):
  """A unit's records did not all arrive in the bundle that read it."""


IDS_TAG = 'ids'


class _Open:
  """A unit being written: its parts so far, its rows' ids, and its UnitEnd once that arrived."""
  __slots__ = ('parts', 'ids', 'end')

  def __init__(self, parts: markers.UnitParts):
    self.parts, self.ids, self.end = parts, [], None

  def done(self) -> int:
    return sum(self.parts.rows(name) for name in DATASETS)


class WriteUnits(beam.DoFn):
  """(dataset or END, unit, row or UnitEnd) -> the markers of the units it committed, and their rows' ids in
  (bucket, ids) lists on the 'ids' output (tally.DuplicateIds)."""

  def __init__(self, layout: Layout, schemas: Dict[str, pa.Schema]):
    self._layout = layout
    self._schemas = schemas
    self._open: Dict[str, _Open] = {}

  def start_bundle(self):
    self._abandon()

  def process(self, element) -> Iterable[dict]:
    kind, unit, value = element
    state = self._open.get(unit)
    if state is None:
      state = self._open[unit] = _Open(markers.UnitParts(self._layout, unit_key(unit), self._schemas))
    if kind == format_stage.END:
      state.end = value
    else:
      state.parts.add(kind, value, unit)
      if kind == PREDICTIONS_DIR:
        state.ids.append(value['id'])
    if state.end is None:
      return
    done = state.done()
    if done > state.end.records:
      raise UnitIncomplete(f'{unit}: {done} rows and error rows for the {state.end.records} records read')
    if done == state.end.records:
      del self._open[unit]
      yield state.parts.commit(state.end)
      for bucket in tally.id_buckets(state.ids):
        yield beam.pvalue.TaggedOutput(IDS_TAG, bucket)

  def finish_bundle(self):
    if self._open:
      pending = {unit: (s.done(), s.end) for unit, s in sorted(self._open.items())[:5]}
      count = len(self._open)
      self._abandon()
      raise UnitIncomplete(f'{count} read unit(s) incomplete at the end of the bundle (rows so far, end): '
                           f'{pending}')

  def teardown(self):
    self._abandon()

  def _abandon(self) -> None:
    for state in self._open.values():
      state.parts.abandon()
    self._open = {}
