"""Infer stage: Beam's RunInference over any models.ImageModel.

RunInference loads the model once per worker process and shares it between
the process's threads; it batches elements with BatchElements using the sizes
given here. Failed batches come back on a dead-letter output and become error
rows, one per image.
"""
from typing import Any, Dict, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, RunInference

from transforms import elements
from transforms.infer import model_files, models


class ImageModelHandler(ModelHandler[elements.DecodedImage, elements.Prediction, models.ImageModel]):

  def __init__(self, spec: models.ModelSpec, min_batch_size: int, max_batch_size: int):  # defaults: pipeline/options
    super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
    self._spec = spec

  def load_model(self) -> models.ImageModel:
    return model_files.load(self._spec)

  def run_inference(self,
                    batch: Sequence[elements.DecodedImage],
                    model: models.ImageModel,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[elements.Prediction]:
    outputs = model.predict(np.stack([image.pixels for image in batch]))
    for i, image in enumerate(batch):
      yield elements.Prediction(
          image.ref, image.width, image.height,
          None if outputs.probabilities is None else outputs.probabilities[i],
          None if outputs.embedding is None else outputs.embedding[i])

  def get_num_bytes(self, batch: Sequence[elements.DecodedImage]) -> int:
    return sum(image.pixels.nbytes for image in batch)  # the default pickles the whole batch


def _failed_batch_to_errors(failed):
  batch, (exc_type, exc_repr, _) = failed  # as Beam's with_exception_handling emits it
  for image in batch:
    yield elements.ErrorRecord(image.ref.id, image.ref.source, elements.INFER, exc_type.__name__,
                              f'model failed on the batch holding this image: {exc_repr}')


class Infer(beam.PTransform):
  """DecodedImage -> Prediction, with an errors output for batches the model rejected."""

  def __init__(self, handler: ImageModelHandler):
    super().__init__()
    self._handler = handler

  def expand(self, decoded):
    predictions, dead = decoded | RunInference(self._handler).with_exception_handling()
    errors = dead.failed_inferences | 'InferErrors' >> beam.FlatMap(_failed_batch_to_errors)
    return {'predictions': predictions, elements.ERRORS_TAG: errors}
