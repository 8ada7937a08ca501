"""The one interface every model backend implements.

A backend takes a batch of uint8 RGB images at its input size and returns
class probabilities and/or embeddings from a single forward pass. It knows
nothing about Beam: `transforms.infer.handler` adapts it to RunInference.
"""
import abc
import dataclasses
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

CLASSIFY, EMBED, BOTH = 'classify', 'embed', 'both'
TASKS = (CLASSIFY, EMBED, BOTH)
TENSORFLOW, TFLITE_RUNTIME = 'tensorflow', 'tflite'  # what runs a TF1 Hub module or SavedModel (--tf_runtime)
TF_RUNTIMES = (TENSORFLOW, TFLITE_RUNTIME)
# For models that accept any input size and are given no --image_size: the size ImageNet
# classifiers (MobileNet, Keras Applications) are published at.
DEFAULT_IMAGE_SIZE = 224
# TF-Hub's image convention (tfhub.dev "common signatures for images"): RGB floats in [0, 1].
# No format here records a float input range, so it is the default wherever the model does not declare one.
HUB_IMAGE_RANGE = (0.0, 1.0)


class ModelError(ValueError):
  """A model that cannot be used as asked; raised before any data is read."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything needed to load a model on any worker; small and picklable."""
  location: str  # TF-Hub handle, local path or gs:// path
  task: str = BOTH
  image_size: Optional[int] = None  # for models that accept any size
  num_threads: Optional[int] = None  # compute threads per worker process
  classes_output: Optional[str] = None  # output/signature/layer/tensor name; None: the format's default
  embedding_output: Optional[str] = None
  input_range: Optional[Tuple[float, float]] = None  # float value pixel 0 and 255 map to; None: the model's
  tf_runtime: str = TENSORFLOW  # TF1 Hub and SavedModel: TFLITE_RUNTIME runs a float conversion (to_tflite.py)

  @property
  def wants_classes(self) -> bool:
    return self.task in (CLASSIFY, BOTH)

  @property
  def wants_embedding(self) -> bool:
    return self.task in (EMBED, BOTH)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the pipeline needs to know about a model before it reads data, and what inspect_model shows."""
  format: str
  input_size: Tuple[int, int]  # (height, width) the images are resized to
  input_range: Tuple[float, float]  # value range the model expects
  num_classes: Optional[int]  # None when the model does not classify
  embedding_dim: Optional[int]  # None when the model does not embed
  description: str = ''
  input_size_fixed: bool = True  # False: any size, input_size chosen by --image_size or the default
  classes_output: Optional[str] = None  # the output used, as --classes_output names it
  embedding_output: Optional[str] = None
  outputs: Tuple[str, ...] = ()  # what the model offers, as the output options name it


class Outputs(NamedTuple):
  probabilities: Optional[np.ndarray]  # float32 [N, num_classes]
  embedding: Optional[np.ndarray]  # float32 [N, dim]


class ImageModel(abc.ABC):
  """A loaded model, ready to predict: one forward pass per batch (per image for TFLite models with a fixed
  batch of one), whatever the task."""
  info: ModelInfo

  @abc.abstractmethod
  def predict(self, images: np.ndarray) -> Outputs:
    """images: uint8 [N, H, W, 3] at info.input_size."""

  def scale(self, images: np.ndarray) -> np.ndarray:
    """uint8 pixels to the model's float input range, vectorized over the batch."""
    low, high = self.info.input_range
    return images.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)


class ArrayModel(ImageModel):
  """A backend whose _raw gives the wanted outputs as arrays, [classes, embedding] or one of them."""
  _wants_classes: bool
  _wants_embedding: bool
  _logits: bool = False

  @abc.abstractmethod
  def _raw(self, images: np.ndarray) -> List[np.ndarray]:
    """One forward pass: uint8 [N, H, W, 3] -> the wanted outputs, as the network gives them."""

  def _init_outputs(self, spec: ModelSpec) -> None:
    """After info is set: whether the classes output needs a softmax, decided once."""
    self._wants_classes, self._wants_embedding = spec.wants_classes, spec.wants_embedding
    if spec.wants_classes:
      self._logits = are_logits(self.info.classes_output, self._raw(probe_images(self.info.input_size))[0])

  def predict(self, images: np.ndarray) -> Outputs:
    arrays = self._raw(images)
    return to_outputs(arrays[0] if self._wants_classes else None, arrays[-1] if self._wants_embedding else None,
                      self._logits)


def softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(axis=-1, keepdims=True)
  exp = np.exp(shifted, dtype=np.float32)
  return exp / exp.sum(axis=-1, keepdims=True)


def is_distribution(scores: np.ndarray) -> bool:
  """True when every row is already a probability distribution (a softmax output)."""
  return bool(np.all(scores >= 0) and np.all(scores <= 1) and np.allclose(scores.sum(axis=-1), 1.0, atol=1e-3))


def probe_images(size: Tuple[int, int]) -> np.ndarray:
  """A black and a white image: two inputs on which logits essentially never sum to one."""
  return np.stack([np.zeros(size + (3,), np.uint8), np.full(size + (3,), 255, np.uint8)])


def input_size(declared: Sequence[Optional[int]], requested: Optional[int], location: str) -> Tuple[int, int]:
  """(height, width) from the model's declared [H, W] (None where any size goes) and --image_size."""
  height, width = declared
  if height is None or width is None:
    side = requested or DEFAULT_IMAGE_SIZE
    return (height or side, width or side)
  if requested is not None and (requested, requested) != (height, width):
    raise ModelError(f'{location}: input size mismatch: --image_size {requested} given, but the model takes '
                     f'only {height}x{width} images')
  return (int(height), int(width))


def float_range(spec: ModelSpec) -> Tuple[float, float]:
  """The float input range of a model that does not declare one: --input_range, else TF-Hub's convention."""
  return spec.input_range or HUB_IMAGE_RANGE


def flat(array: np.ndarray) -> np.ndarray:
  """[N, ...] -> float32 [N, D], e.g. a [N, 1, 1, 512] pooling output to [N, 512]."""
  return array.reshape(len(array), -1).astype(np.float32, copy=False)


def are_logits(name: str, probe_scores: np.ndarray) -> bool:
  """Whether a classes output needs a softmax: by its name when it says, else by its values on probe_images."""
  lowered = name.lower()
  if 'logit' in lowered:
    return True
  if 'prob' in lowered or 'softmax' in lowered:
    return False
  return not is_distribution(probe_scores)


def to_outputs(classes: Optional[np.ndarray], embedding: Optional[np.ndarray], logits: bool) -> Outputs:
  """Raw network outputs to Outputs: class scores as probabilities, embeddings as flat float32 vectors."""
  probabilities = None
  if classes is not None:
    probabilities = softmax(flat(classes)) if logits else flat(classes)
  return Outputs(probabilities, None if embedding is None else flat(embedding))
