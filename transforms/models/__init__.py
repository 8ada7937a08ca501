"""Model loading: one interface (base.ImageModel), one module per format."""
from transforms.models import locate
from transforms.models.base import (BOTH, CLASSIFY, EMBED, TASKS, ImageModel, ModelError, ModelInfo,
                                    ModelSpec, Outputs)


def _tf1_hub(path, spec):
  from transforms.models.tf1_hub import TF1HubModel  # pylint: disable=import-outside-toplevel
  return TF1HubModel(path, spec)


BACKENDS = {'tf1_hub': _tf1_hub}


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


def load(spec: ModelSpec) -> ImageModel:
  path = locate.resolve(spec.location)
  fmt = locate.detect_format(path)
  if fmt not in BACKENDS:
    raise ModelError(f'{spec.location}: {fmt} models are not supported yet')
  configure_threads(spec.num_threads)
  return BACKENDS[fmt](path, spec)


__all__ = ['BOTH', 'CLASSIFY', 'EMBED', 'TASKS', 'ImageModel', 'ModelError', 'ModelInfo', 'ModelSpec',
           'Outputs', 'load']
