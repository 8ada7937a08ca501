"""Format stage: Prediction -> output row, ErrorRecord -> error row (dicts matching output/schema.py), each
tagged with its dataset and read unit for the unit writer (transforms/output/write_units.py)."""
from typing import Iterable, List, Optional

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from transforms import elements, progress
from transforms.infer import labels as labels_lib
from transforms.output.layout import ERRORS_DIR as ERRORS
from transforms.output.layout import PREDICTIONS_DIR as PREDICTIONS
from transforms.output.schema import EMBEDDING_COLUMN
from transforms.output.vectors import Vectors

DEFAULT_PROGRESS_SECONDS = 10.0  # --progress_seconds: how often progress is shown (transforms/progress.py)
END = 'end'  # FormatRows tags its outputs with the dataset a row goes to, or this for a unit's end


def escaped(name: str) -> str:
  """A name as Parquet can hold it: bytes that were not UTF-8 (file and member names come with Python's
  surrogateescape, as os and tarfile decode them) become %XX; every other character stays as it is.
  `urllib.parse.unquote_to_bytes` gives the name's bytes back (docs/output.md)."""
  try:
    name.encode('utf-8')  # nearly every name: one pass in C, per row
    return name
  except UnicodeEncodeError:
    return ''.join(f'%{ord(c) - 0xDC00:02X}' if '\udc80' <= c <= '\udcff' else c for c in name)


def top_k(probabilities: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k largest scores, best first; equal scores (common in quantized outputs) by class index."""
  return np.argsort(-probabilities, kind='stable')[:k]


class FormatRows(beam.DoFn):

  def __init__(self, model_name: str, top_k_count: int, labels_path: Optional[str] = None,
               progress_seconds: float = DEFAULT_PROGRESS_SECONDS, num_classes: Optional[int] = None,
               vectors: Optional[Vectors] = None):
    self._model_name = model_name
    self._vectors = vectors
    self._progress_seconds = progress_seconds
    self._k = top_k_count
    self._labels_path = labels_path
    self._num_classes = num_classes
    self._labels: Optional[List[str]] = None
    self._rows = Metrics.counter('images', 'rows_formatted')

  def setup(self):
    if self._labels_path:
      self._labels = labels_lib.load_labels(self._labels_path, self._num_classes)

  def finish_bundle(self):
    progress.flush()  # the launcher's line sees this bundle's images before the job ends

  def process(self, element) -> Iterable[tuple]:
    """(dataset, unit, row) for a prediction or an error record, (END, unit, UnitEnd) for a unit's end."""
    if isinstance(element, elements.Prediction):
      yield PREDICTIONS, element.ref.unit, self.row(element)
    elif isinstance(element, elements.ErrorRecord):
      Metrics.counter('errors', element.stage).inc()
      progress.add(0, self._progress_seconds, errors=1)
      yield ERRORS, element.unit, error_row(element)
    else:
      yield END, element.unit, element

  def row(self, prediction: elements.Prediction) -> dict:
    ref = prediction.ref
    row = {
        'id': escaped(ref.id),
        'source': escaped(ref.source),
        'width': prediction.width,
        'height': prediction.height,
        'model': self._model_name,
    }
    if prediction.probabilities is not None:
      best = top_k(prediction.probabilities, self._k)
      row['top_classes'] = best.tolist()
      row['top_scores'] = prediction.probabilities[best].tolist()
      if self._labels is not None:
        row['top_labels'] = [self._labels[i] for i in best]
    if prediction.embedding is not None:  # an array: Arrow takes it 30x faster than a list of floats
      row[EMBEDDING_COLUMN] = self._vectors.shape(prediction.embedding) if self._vectors else prediction.embedding
    if ref.extra:
      row.update(ref.extra)
    self._rows.inc()
    progress.add(1, self._progress_seconds)
    return row


def error_row(error: elements.ErrorRecord) -> dict:
  """The error dataset's columns (the unit is not one)."""
  return {'id': escaped(error.id), 'source': escaped(error.source), 'stage': error.stage,
          'error_type': error.error_type, 'message': error.message}
