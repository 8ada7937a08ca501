"""What reading one record gives, for every reader: an image or an error row, and a count of records read."""
import os
import socket
from typing import Callable

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import elements

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
