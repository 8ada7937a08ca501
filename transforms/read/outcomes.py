"""What every reader shares: an image or an error row per record, the records-read counter, and the match-then-
read shape of a reader (files of one format, a DoFn per file, the images, errors and unread outputs)."""
import os
import socket
from typing import Callable, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import elements
from transforms.read import match, retry

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


def rest_of_file_lost(counter: ReadCounter, where: str, exc: BaseException, context: str):
  """The error row for what is left of a file that failed part-way, counted as one input; its id is where."""
  counter.inc()
  error = elements.ErrorRecord(where, where, elements.READ, type(exc).__name__, f'{context}: {exc}')
  return beam.pvalue.TaggedOutput(elements.ERRORS_TAG, error)


def counted(items, counter: ReadCounter):
  """A resilient read's items, each counted as read; an Unread ends them, as the unread output."""
  for item in items:
    if isinstance(item, retry.Unread):
      yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, item.location)
      return
    counter.inc()
    yield item


def read_with(files, label: str, reader: beam.DoFn) -> dict:
  """Files -> what every reader gives: {'images': ..., 'errors': ..., 'unread': ...}."""
  read = files | label >> beam.ParDo(reader).with_outputs(elements.ERRORS_TAG, retry.UNREAD_TAG, main='images')
  return {'images': read.images, elements.ERRORS_TAG: read[elements.ERRORS_TAG],
          retry.UNREAD_TAG: read[retry.UNREAD_TAG]}


class MatchAndRead(beam.PTransform):
  """Inputs of one format -> the files they name (match.MatchInputs) -> `reader` on each file."""

  def __init__(self, patterns: Sequence[str], fmt: str, reader: beam.DoFn):
    super().__init__()
    self._patterns = list(patterns)
    self._fmt = fmt
    self._reader = reader

  def expand(self, pbegin):
    return read_with(pbegin | 'Match' >> match.MatchInputs(self._patterns, self._fmt), 'Read', self._reader)
