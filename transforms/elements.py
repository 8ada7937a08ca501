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


def error_for(ref: ImageRef, stage: str, exc: BaseException) -> ErrorRecord:
  """An error row for one input; the message is what a user reads first."""
  return ErrorRecord(ref.id, ref.source, stage, type(exc).__name__, str(exc) or repr(exc))


class RecordError(Exception):
  """A failure tied to one input record; carries the record's ref so the error row can locate it."""

  def __init__(self, ref: ImageRef, cause: BaseException):
    super().__init__(str(cause))
    self.ref = ref
    self.cause = cause

  def error(self, stage: str) -> ErrorRecord:
    return error_for(self.ref, stage, self.cause)
