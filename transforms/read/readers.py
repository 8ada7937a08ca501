"""Read stage: inputs -> their read units (units.py) -> EncodedImage(ref, bytes) and read errors, whatever the
input format.

Each input is read by the reader of its format, as the plan (plan.py) fixed
it: image files (image_files.py), TFRecord shards of tf.Example
(tfrecord_shards.py), WebDataset tar shards (tar_shards.py), Parquet image
tables (parquet_tables.py) or Arrow IPC tables (arrow_tables.py).
"""
from typing import Dict

import apache_beam as beam

from transforms.read import (arrow_tables, image_files, image_units, parquet_tables, storage, tar_shards, tfrecord_shards,
                             units)
from transforms.read.formats.detect import ARROW, FORMATS, IMAGES, PARQUET, TAR, TFRECORD
from transforms.read.plan import InputPlan


def _planner(fmt: str, input_plan: InputPlan, files_per_unit: int):
  if fmt == TFRECORD:
    return tfrecord_shards.PlanRanges(input_plan.settings.compression)
  if fmt == TAR:
    return tar_shards.planner
  if fmt == PARQUET:
    return parquet_tables.PlanRowGroups(input_plan.settings, files_per_unit)
  if fmt == ARROW:
    return arrow_tables.planner
  return image_units.planner(files_per_unit)


def readers(input_plan: InputPlan) -> Dict[str, beam.DoFn]:
  """Per format, the DoFn that reads one item of a unit."""
  settings = input_plan.settings
  files = image_files.reader(settings.max_input_bytes, storage.Storage.of(settings))
  shards = {TFRECORD: tfrecord_shards.reader(settings), TAR: tar_shards.reader(settings)}
  if settings.table is not None:
    shards.update({PARQUET: parquet_tables.reader(settings), ARROW: arrow_tables.reader(settings)})
  return {**shards, **{fmt: files for fmt in FORMATS if fmt not in (TFRECORD, TAR, PARQUET, ARROW)}}


def read_units(input_plan: InputPlan) -> units.ReadUnits:
  """The DoFn that reads every unit, with the read window the settings ask for."""
  settings = input_plan.settings
  return units.ReadUnits(readers(input_plan), settings.reads_in_flight, settings.read_bytes_in_flight)


class PlanInputs(beam.PTransform):
  """pbegin -> ({format: its read units} for each format the inputs are in (each read on a line of its own:
  image units flow from the listing into the reader unshuffled, pipeline/graph.py), [the files each format's
  listing skipped: (extension, count, a few paths)])."""

  def __init__(self, input_plan: InputPlan, files_per_unit: int = image_units.DEFAULT_FILES_PER_UNIT):
    super().__init__()
    self._plan = input_plan
    self._per_unit = files_per_unit

  def expand(self, pbegin):
    planned, skipped = {}, []
    for fmt in FORMATS:
      patterns = [pattern for pattern, f in self._plan.inputs if f == fmt]
      if patterns:
        planned[fmt], left_out = pbegin | f'Plan_{fmt}' >> units.PlanUnits(
            patterns, fmt, _planner(fmt, self._plan, self._per_unit), self._plan.settings.anonymous,
            self._per_unit if fmt == IMAGES else 1)
        skipped.append(left_out)
    return planned, skipped


class ReadImages(beam.PTransform):
  """Every input by the reader of its format, without resume; returns {'images': ..., 'errors': ...,
  'unread': ...}. 'unread': the locations (str) storage would not give after retries (retry.py)."""

  def __init__(self, input_plan: InputPlan, files_per_unit: int = image_units.DEFAULT_FILES_PER_UNIT):
    super().__init__()
    self._plan = input_plan
    self._per_unit = files_per_unit

  def expand(self, pbegin):
    planned, _ = pbegin | 'Plan' >> PlanInputs(self._plan, self._per_unit)
    return units.by_kind(units.read_all(tuple(planned.values()) | 'AllUnits' >> beam.Flatten(),
                                        read_units(self._plan)))
