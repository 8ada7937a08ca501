"""Infer stage: Beam's RunInference over any models.ImageModel.

RunInference loads the model once per worker process and shares it between
the process's threads; with --model_copies N it loads N per machine instead,
served by the first worker process and called by the others through Beam's
multi_process_shared proxies (less memory, more CPU per image:
docs/benchmarks.md). It batches elements with BatchElements using the sizes
given here. A batch the model fails on becomes error rows, one per image,
made by the handler itself: error records and unit ends from earlier stages
ride in the same batches and come out unchanged, so the line from read to
write stays one fused chain without a Flatten (which the local runner
materializes, splitting a read unit across bundles: transforms/read/units.py).

With a timeout (--inference_timeout_seconds), each model call runs on a helper
thread (transforms/watchdog.py: one per calling thread, reused) and the handler
stops waiting after that many seconds: the batch fails with a TimeoutError and
its images become infer error rows saying it timed out, while the job goes on. The stuck call keeps its daemon
thread until it returns. (Not Beam's own `with_exception_handling(timeout=)`:
its helper threads are joined at exit, so a call that never returns would keep
the worker process, and the launcher waiting for it, from ever exiting.)
"""
import dataclasses
import os
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
               timeout: Optional[float] = INFERENCE_TIMEOUT_SECONDS, model_copies: Optional[int] = None):
    # model_copies: that many models per machine, each in one worker process and called by the others through
    # Beam's multi_process_shared proxies; None: one model in each worker process.
    super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, model_copies=model_copies)
    self._spec = spec
    self._timeout = timeout or None  # None or 0: no bound

  def load_model(self) -> models.ImageModel:
    spec = self._spec
    if spec.num_threads is None:  # a shared copy serves every worker: the machine's cores, split among the copies
      spec = dataclasses.replace(spec, num_threads=max(1, (os.cpu_count() or 1) // self.model_copies()))
    return model_files.load(spec)

  def run_inference(self,
                    batch: Sequence,
                    model: models.ImageModel,
                    inference_args: Optional[Dict[str, Any]] = None) -> Iterable:
    images = [item for item in batch if isinstance(item, elements.DecodedImage)]
    yield from (item for item in batch if not isinstance(item, elements.DecodedImage))  # errors, unit ends
    if not images:
      return
    try:
      outputs = self._predict(np.stack([image.pixels for image in images]), model)
    except Exception as e:  # pylint: disable=broad-except
      yield from failed_batch_errors(images, e, self._timeout)
      return
    for i, image in enumerate(images):
      yield elements.Prediction(
          image.ref, image.width, image.height,
          None if outputs.probabilities is None else outputs.probabilities[i],
          None if outputs.embedding is None else outputs.embedding[i])

  def _predict(self, pixels: np.ndarray, model: models.ImageModel):
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
    return outputs

  def get_num_bytes(self, batch: Sequence) -> int:  # the default pickles the whole batch
    return sum(item.pixels.nbytes for item in batch if isinstance(item, elements.DecodedImage))


def failed_batch_errors(images: Sequence[elements.DecodedImage], exc: BaseException,
                        timeout: Optional[float] = None) -> Iterable[elements.ErrorRecord]:
  """One infer error row per image of a batch the model failed on or did not finish in time."""
  if isinstance(exc, TimeoutError) and timeout:
    message = (f'model timed out: no result within {timeout:g} s (--inference_timeout_seconds) for the batch '
               'holding this image')
  else:
    message = f'model failed on the batch holding this image: {exc!r}'
  for image in images:
    ref = image.ref
    yield elements.ErrorRecord(ref.id, ref.source, elements.INFER, type(exc).__name__, message, ref.unit)


def Infer(handler: ImageModelHandler) -> beam.PTransform:  # pylint: disable=invalid-name
  """DecodedImage -> Prediction, or infer error rows for a batch the model rejected or did not finish in time;
  anything else passes through."""
  return RunInference(handler)
