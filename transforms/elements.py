"""The element types that flow between stages: read -> decode -> infer -> format.

Plain NamedTuples so they pickle cheaply between Beam stages and read like
records, not objects.
"""
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

# Stages named in error rows, in pipeline order.
READ, DECODE, PREPROCESS, INFER = 'read', 'decode', 'preprocess', 'infer'
ERRORS_TAG = 'errors'


class ImageRef(NamedTuple):
  """Where an image came from; travels with it through every stage."""
  id: str
  source: str  # URI, with '#...' locating the record inside a container file
  extra: Optional[Mapping[str, Any]] = None  # passthrough columns
  unit: str = ''  # the read unit it came from: its rows are committed with that unit's (transforms/read/units.py)


class EncodedImage(NamedTuple):
  ref: ImageRef
  data: bytes


class DecodedImage(NamedTuple):
  ref: ImageRef
  width: int  # as displayed, after EXIF orientation
  height: int
  pixels: np.ndarray  # uint8 [H, W, 3] at the model's input size


class Prediction(NamedTuple):
  ref: ImageRef
  width: int
  height: int
  probabilities: Optional[np.ndarray]  # float32 [num_classes]
  embedding: Optional[np.ndarray]  # float32 [dim]


class ErrorRecord(NamedTuple):
  id: str
  source: str
  stage: str
  error_type: str
  message: str
  unit: str = ''  # as ImageRef.unit; not a column


class UnitEnd(NamedTuple):
  """Follows a read unit's records down the line: the writer commits the unit once it has this many rows and
  error rows (transforms/output/write_units.py)."""
  unit: str
  records: int  # images and read errors the reader gave
  unread: tuple = ()  # what storage would not give after retries (transforms/read/retry.py)
  fingerprint: str = ''  # what the unit held when read (transforms/read/units.py)
  stopped: tuple = ()  # where reading broke off, records after it uncounted (outcomes.rest_of_file_lost)
  counts: tuple = ()  # (name, count) the readers noted beside the records (outcomes.COUNTS_TAG), for the summary


def error_for(ref: ImageRef, stage: str, exc: BaseException) -> ErrorRecord:
  """An error row for one input; the message is what a user reads first."""
  return ErrorRecord(ref.id, ref.source, stage, type(exc).__name__, str(exc) or repr(exc), ref.unit)


class RecordError(Exception):
  """A failure tied to one input record; carries the record's ref so the error row can locate it."""

  def __init__(self, ref: ImageRef, cause: BaseException):
    super().__init__(str(cause))
    self.ref = ref
    self.cause = cause

  def error(self, stage: str) -> ErrorRecord:
    return error_for(self.ref, stage, self.cause)
