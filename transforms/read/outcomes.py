"""What every reader shares: an image or an error row per record, the records-read counter, and the plan-then-
read shape of a reader (the units of one format, a DoFn per file or range, the images, errors and unread
outputs)."""
import os
import socket
from typing import Callable, Dict, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import elements
from transforms.read import retry, units

NAMESPACE = 'images'
WORKERS_NAMESPACE = 'records_read_by_worker'


class ReadCounter:
  """Counts inputs read, in total and per worker process (the run summary shows how reads spread)."""

  def __init__(self):
    self._total = Metrics.counter(NAMESPACE, 'records_read')
    self._worker = None

  def inc(self, n: int = 1) -> None:
    if self._worker is None:  # created on the worker, where the pid means something
      self._worker = Metrics.counter(WORKERS_NAMESPACE, f'{socket.gethostname()}:{os.getpid()}')
    self._total.inc(n)
    self._worker.inc(n)


def image_or_error(make_image: Callable[[], elements.EncodedImage]):
  """The image a reader makes of one record, or the read error row for it on the errors output."""
  try:
    return make_image()
  except elements.RecordError as e:
    return beam.pvalue.TaggedOutput(elements.ERRORS_TAG, e.error(elements.READ))


STOPPED_TAG = 'stopped'  # an error row for the rest of a file: how many records it held is unknown
COUNTS_TAG = 'counts'  # ((name, count), ...) a reader noted of an item, beside its records: kept in the marker
UNUSED_MEMBERS = 'unused_members/'  # + extension: tar members no row holds (a second image, unasked-for metadata)
PASSTHROUGH_NULLS = 'passthrough_nulls/'  # + column: values of another type than the column's, written as null


def noted(counts: Dict[str, int], prefix: str, more: Dict[str, int]) -> None:
  for key, n in more.items():
    counts[prefix + key] = counts.get(prefix + key, 0) + n


def counts_output(counts: Dict[str, int]):
  """What an item's reader noted, for ReadUnits to keep in the unit's marker; nothing when there is none."""
  return [beam.pvalue.TaggedOutput(COUNTS_TAG, tuple(sorted(counts.items())))] if counts else []


def rest_of_file_lost(counter: ReadCounter, where: str, exc: BaseException, context: str):
  """The error row for what is left of a file that failed part-way, counted as one input; its id is where. On
  its own output: the unit it ends did not hold a known number of records, so the job cannot say it read them
  all (ReadUnits notes where it stopped; the summary is then not `accounted`)."""
  counter.inc()
  error = elements.ErrorRecord(where, where, elements.READ, type(exc).__name__, f'{context}: {exc}')
  return beam.pvalue.TaggedOutput(STOPPED_TAG, error)


def counted(items, counter: ReadCounter):
  """A resilient read's items, each counted as read; an Unread ends them, as the unread output."""
  for item in items:
    if isinstance(item, retry.Unread):
      yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, item.location)
      return
    counter.inc()
    yield item


class MatchAndRead(beam.PTransform):
  """Inputs of one format -> its units (units.PlanUnits, with `planner`) -> each read whole by `reader`; returns
  {'images': ..., 'errors': ..., 'unread': ...} (the job itself reads units on one line: pipeline/graph.py)."""

  def __init__(self, patterns: Sequence[str], fmt: str, planner, reader: beam.DoFn, every: int = 1):
    super().__init__()
    self._every = every
    self._patterns = list(patterns)
    self._fmt = fmt
    self._planner = planner
    self._reader = reader

  def expand(self, pbegin):
    planned, _ = pbegin | 'Plan' >> units.PlanUnits(self._patterns, self._fmt, self._planner, every=self._every)
    return units.by_kind(units.read_all(planned, units.ReadUnits({self._fmt: self._reader})))
