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
are orphans the commit deletes). Each row is written once, into its unit's part:
the parts are the final dataset.
"""
from typing import Dict, Iterable

import apache_beam as beam
import pyarrow as pa

from transforms import format as format_stage
from transforms.output import markers, tally
from transforms.output.layout import DATASETS, ERRORS_DIR, PREDICTIONS_DIR, Layout
from transforms.read.units import unit_key


class UnitIncomplete(RuntimeError):
  """A unit's records did not all arrive in the bundle that read it."""


IDS_TAG = 'ids'


class WriteUnits(beam.DoFn):
  """(dataset or END, unit, row or UnitEnd) -> the markers of the units it committed, and their rows' ids in
  (bucket, ids) lists on the 'ids' output (tally.DuplicateIds)."""

  def __init__(self, layout: Layout, schemas: Dict[str, pa.Schema]):
    self._layout = layout
    self._schemas = schemas
    self._open: Dict[str, dict] = {}

  def start_bundle(self):
    self._open = {}

  def process(self, element) -> Iterable[dict]:
    kind, unit, value = element
    state = self._open.setdefault(unit, {PREDICTIONS_DIR: [], ERRORS_DIR: [], format_stage.END: None})
    if kind == format_stage.END:
      state[kind] = value
    else:
      state[kind].append(value)
    end = state[format_stage.END]
    if end is None:
      return
    done = len(state[PREDICTIONS_DIR]) + len(state[ERRORS_DIR])
    if done > end.records:
      raise UnitIncomplete(f'{unit}: {done} rows and error rows for the {end.records} records read')
    if done == end.records:
      del self._open[unit]
      yield markers.commit_unit(self._layout, unit_key(unit), end, {name: state[name] for name in DATASETS},
                                self._schemas)
      for bucket in tally.id_buckets(row['id'] for row in state[PREDICTIONS_DIR]):
        yield beam.pvalue.TaggedOutput(IDS_TAG, bucket)

  def finish_bundle(self):
    if self._open:
      pending = {unit: (len(s[PREDICTIONS_DIR]) + len(s[ERRORS_DIR]), s[format_stage.END])
                 for unit, s in sorted(self._open.items())[:5]}
      raise UnitIncomplete(f'{len(self._open)} read unit(s) incomplete at the end of the bundle (rows so far, '
                           f'end): {pending}')
