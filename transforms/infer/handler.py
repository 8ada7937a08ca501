"""Infer stage: Beam's RunInference over any models.ImageModel.

RunInference loads the model once per worker process and shares it between
the process's threads; it batches elements with BatchElements using the sizes
given here. Failed batches come back on a dead-letter output and become error
rows, one per image.

With a timeout (--inference_timeout_seconds), each model call runs on a helper
thread (transforms/watchdog.py: one per calling thread, reused) and the handler
stops waiting after that many seconds: the batch fails with a TimeoutError,
comes out on the dead-letter output, and its images become infer error rows
saying it timed out, while the job goes on. The stuck call keeps its daemon
thread until it returns. (Not Beam's own `with_exception_handling(timeout=)`:
its helper threads are joined at exit, so a call that never returns would keep
the worker process, and the launcher waiting for it, from ever exiting.)
"""
import threading
from typing import Any, Dict, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, RunInference

from transforms import elements, watchdog
from transforms.infer import model_files, models

# Longest one model call (a batch) may take (--inference_timeout_seconds; 0: no bound). Generous: a batch takes
# seconds at most on a CPU; far longer means a model call that hangs.
INFERENCE_TIMEOUT_SECONDS = 600

_threads = threading.local()  # each calling thread's watchdog


class ImageModelHandler(ModelHandler[elements.DecodedImage, elements.Prediction, models.ImageModel]):

  def __init__(self, spec: models.ModelSpec, min_batch_size: int, max_batch_size: int,  # defaults: pipeline/options
               timeout: Optional[float] = INFERENCE_TIMEOUT_SECONDS):
    super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
    self._spec = spec
    self._timeout = timeout or None  # None or 0: no bound

  def load_model(self) -> models.ImageModel:
    return model_files.load(self._spec)

  def run_inference(self,
                    batch: Sequence[elements.DecodedImage],
                    model: models.ImageModel,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable[elements.Prediction]:
    pixels = np.stack([image.pixels for image in batch])
    if self._timeout is None:
      outputs = model.predict(pixels)
    else:
      bound = getattr(_threads, 'watchdog', None)
      if bound is None:
        bound = _threads.watchdog = watchdog.Watchdog('infer')
      try:
        outputs = bound.call(self._timeout, model.predict, pixels)
      except watchdog.TimedOut:
        _threads.watchdog = None  # its thread is left to the stuck call
        raise TimeoutError(f'model timed out after {self._timeout:g} s') from None
    for i, image in enumerate(batch):
      yield elements.Prediction(
          image.ref, image.width, image.height,
          None if outputs.probabilities is None else outputs.probabilities[i],
          None if outputs.embedding is None else outputs.embedding[i])

  @property
  def timeout(self) -> Optional[float]:
    return self._timeout

  def get_num_bytes(self, batch: Sequence[elements.DecodedImage]) -> int:
    return sum(image.pixels.nbytes for image in batch)  # the default pickles the whole batch


def _failed_batch_to_errors(failed, timeout: Optional[float] = None):
  batch, (exc_type, exc_repr, _) = failed  # as Beam's with_exception_handling emits it
  if issubclass(exc_type, TimeoutError) and timeout:
    message = (f'model timed out: no result within {timeout:g} s (--inference_timeout_seconds) for the batch '
               'holding this image')
  else:
    message = f'model failed on the batch holding this image: {exc_repr}'
  for image in batch:
    yield elements.ErrorRecord(image.ref.id, image.ref.source, elements.INFER, exc_type.__name__, message)


class Infer(beam.PTransform):
  """DecodedImage -> Prediction, with an errors output for batches the model rejected or did not finish within
  the handler's timeout."""

  def __init__(self, handler: ImageModelHandler):
    super().__init__()
    self._handler = handler

  def expand(self, decoded):
    predictions, dead = decoded | RunInference(self._handler).with_exception_handling()
    errors = dead.failed_inferences | 'InferErrors' >> beam.FlatMap(_failed_batch_to_errors,
                                                                    self._handler.timeout)
    return {'predictions': predictions, elements.ERRORS_TAG: errors}
