"""Model loading: one interface (base.ImageModel), one module per format.

Each backend is imported only when a model of its format is loaded, so a job
running a TFLite model never imports TensorFlow.
"""
import atexit
import gc
import importlib

from transforms import native_logs
from transforms.infer.models import locate
from transforms.infer.models.base import (BOTH, CLASSIFY, EMBED, TASKS, TF_RUNTIMES, ImageModel, ModelError,
                                          ModelInfo, ModelSpec, Outputs)

# format -> (module, class)
BACKENDS = {
    locate.TF1_HUB: ('transforms.infer.models.tf1_hub', 'TF1HubModel'),
    locate.SAVED_MODEL: ('transforms.infer.models.saved_model', 'SavedModel'),
    locate.KERAS: ('transforms.infer.models.keras', 'KerasModel'),
    locate.TFLITE: ('transforms.infer.models.tflite', 'TFLiteModel'),
}


def configure_threads(num_threads):
  """Caps TensorFlow's thread pools; must run before TF executes anything in the process."""
  if not num_threads:
    return
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  try:
    tf.config.threading.set_intra_op_parallelism_threads(num_threads)
    tf.config.threading.set_inter_op_parallelism_threads(num_threads)
  except RuntimeError:
    pass  # TF already initialized in this process: keep its pools


def exit_without_final_collection() -> None:
  """At exit, skips the collector's last pass over every object TensorFlow, LiteRT and Beam made.

  That pass takes 0.4 s (LiteRT) to 1 s (TensorFlow) per worker process, and
  the local runner stops its workers one after another; 0.7 s in the launcher
  (Beam, pyarrow, the report's matplotlib). The OS frees the memory
  anyway. Freezing only moves objects out of the collector's sight: files and
  sinks were closed before exit, and nothing is collected after the freeze.
  """
  if not getattr(exit_without_final_collection, 'registered', False):
    atexit.register(gc.freeze)
    exit_without_final_collection.registered = True


def load(spec: ModelSpec) -> ImageModel:
  """Loads a TF-Hub handle or local path; remote paths go through transforms.infer.model_files first."""
  with native_logs.quiet():  # the backend's first import and run print TensorFlow's start-up notices
    path = locate.resolve(spec.location)
    fmt = locate.detect_format(path)
    module_name, class_name = BACKENDS[fmt]
    if fmt != locate.TFLITE:
      configure_threads(spec.num_threads)
    exit_without_final_collection()
    return getattr(importlib.import_module(module_name), class_name)(path, spec)


__all__ = ['BOTH', 'CLASSIFY', 'EMBED', 'TASKS', 'TF_RUNTIMES', 'ImageModel', 'ModelError', 'ModelInfo', 'ModelSpec',
           'Outputs', 'load']
