"""The options that choose and describe the model, shared by the job (pipeline/options.py) and
pipeline.inspect_model: their defaults, meaning and checks."""
from typing import List, Optional, Tuple

from apache_beam.io.filesystems import FileSystems

from transforms import decode
from transforms.decode import DEFAULT_RESIZE_METHOD
from transforms.infer import models

DEFAULT_TOP_K = 5


class OptionsError(ValueError):
  """A bad option; the message says which and why."""


def add_model_arguments(parser, model_flag: bool = True) -> None:
  """The options that choose and describe the model; shared by the job and inspect_model."""
  if model_flag:
    parser.add_argument('--model', help='Required. A TF-Hub handle (https://tfhub.dev/... or google/...), a local '
                        'path or a gs:// path: a TF1 Hub module, a TF2 SavedModel, a .keras file or a .tflite file.')
  parser.add_argument('--task', default=models.BOTH,
                      help=f'{models.CLASSIFY} (top-k classes), {models.EMBED} (feature vector) or {models.BOTH} '
                      '(one forward pass gives both).')
  parser.add_argument('--labels_file', default=None,
                      help='Class names, one per line (line i names class i); without it rows hold class indices '
                      'only. (Beam keeps --labels for Dataflow job labels.)')
  parser.add_argument('--top_k', type=int, default=DEFAULT_TOP_K, help='Classes kept per image, best first.')
  parser.add_argument('--image_size', type=int, default=None,
                      help='Input size (square) for models that accept any size (default '
                      f'{models.base.DEFAULT_IMAGE_SIZE}); for fixed-size models it must equal their size.')
  parser.add_argument('--classes_output', default=None,
                      help='The output giving class scores: a signature or output name, a Keras layer, a TFLite '
                      'tensor (default: the format\'s usual one, see docs/models.md).')
  parser.add_argument('--embedding_output', default=None,
                      help='The output giving the embedding, named as for --classes_output.')
  parser.add_argument('--input_range', default=None,
                      help='LOW,HIGH: the float values pixels 0 and 255 become, for models with float inputs '
                      '(default 0,1, TF-Hub\'s convention, or what the model declares; quantized TFLite models '
                      'declare theirs). Negative values need the = form: --input_range=-1,1.')
  parser.add_argument('--tf_runtime', default=models.base.TENSORFLOW,
                      help=f'{", ".join(models.TF_RUNTIMES)}: what runs a TF1 Hub module or SavedModel; '
                      f'{models.base.TFLITE_RUNTIME} converts it to a float TFLite model at load time and runs it '
                      'with LiteRT (TensorFlow if the conversion fails).')


def add_resize_argument(parser) -> None:
  """--resize_method; shared by the job and inspect_model."""
  parser.add_argument('--resize_method', default=DEFAULT_RESIZE_METHOD,
                      help=f'{", ".join(decode.RESIZE_METHODS)}: the Pillow filter that resizes images to the '
                      'model\'s input size (bilinear antialiases when shrinking).')


def require(value, flag: str):
  if value in (None, ''):
    raise OptionsError(f'{flag} is required')
  return value


def split_list(value: str) -> List[str]:
  """The items of a comma-separated option."""
  return [part.strip() for part in value.split(',') if part.strip()]


def check_resize_method(method: str) -> None:
  if method not in decode.RESIZE_METHODS:
    raise OptionsError(f'--resize_method must be one of {", ".join(decode.RESIZE_METHODS)}, not {method!r}')


def _input_range(value: Optional[str]) -> Optional[Tuple[float, float]]:
  if value is None:
    return None
  try:
    low, high = (float(part) for part in value.split(','))
  except ValueError:
    raise OptionsError(f'--input_range must be LOW,HIGH (e.g. -1,1), not {value!r}') from None
  if not low < high:
    raise OptionsError(f'--input_range needs LOW < HIGH, got {value!r}')
  return (low, high)


def model_spec(o, threads: Optional[int] = None) -> models.ModelSpec:
  """The model options (as add_model_arguments defines them), checked; raises OptionsError."""
  location = require(o.model, '--model')
  if o.task not in models.TASKS:
    raise OptionsError(f'--task must be one of {", ".join(models.TASKS)}, not {o.task!r}')
  if o.top_k < 1:
    raise OptionsError(f'--top_k must be at least 1, not {o.top_k}')
  if o.image_size is not None and o.image_size < 1:
    raise OptionsError(f'--image_size must be positive, not {o.image_size}')
  if o.tf_runtime not in models.TF_RUNTIMES:
    raise OptionsError(f'--tf_runtime must be one of {", ".join(models.TF_RUNTIMES)}, not {o.tf_runtime!r}')
  if o.labels_file and not FileSystems.exists(o.labels_file):
    raise OptionsError(f'--labels_file not found: {o.labels_file}')
  return models.ModelSpec(models.locate.canonical(location), o.task, o.image_size, threads, o.classes_output,
                          o.embedding_output, _input_range(o.input_range), o.tf_runtime)
