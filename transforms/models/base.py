"""The one interface every model backend implements.

A backend takes a batch of uint8 RGB images at its input size and returns
class probabilities and/or embeddings from a single forward pass. It knows
nothing about Beam: `transforms.inference` adapts it to RunInference.
"""
import abc
import dataclasses
from typing import NamedTuple, Optional, Tuple

import numpy as np

CLASSIFY, EMBED, BOTH = 'classify', 'embed', 'both'
TASKS = (CLASSIFY, EMBED, BOTH)


class ModelError(ValueError):
  """A model that cannot be used as asked; raised before any data is read."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """Everything needed to load a model on any worker; small and picklable."""
  location: str  # TF-Hub handle, local path or gs:// path
  task: str = BOTH
  image_size: Optional[int] = None  # for models that accept any size
  num_threads: Optional[int] = None  # intra-op threads per worker process

  @property
  def wants_classes(self) -> bool:
    return self.task in (CLASSIFY, BOTH)

  @property
  def wants_embedding(self) -> bool:
    return self.task in (EMBED, BOTH)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the pipeline needs to know about a model before it reads data."""
  format: str
  input_size: Tuple[int, int]  # (height, width) the images are resized to
  input_range: Tuple[float, float]  # value range the model expects
  num_classes: Optional[int]  # None when the model does not classify
  embedding_dim: Optional[int]  # None when the model does not embed
  description: str = ''


class Outputs(NamedTuple):
  probabilities: Optional[np.ndarray]  # float32 [N, num_classes]
  embedding: Optional[np.ndarray]  # float32 [N, dim]


class ImageModel(abc.ABC):
  """A loaded model, ready to predict."""
  info: ModelInfo

  @abc.abstractmethod
  def predict(self, images: np.ndarray) -> Outputs:
    """images: uint8 [N, H, W, 3] at info.input_size."""

  def scale(self, images: np.ndarray) -> np.ndarray:
    """uint8 pixels to the model's float input range, vectorized over the batch."""
    low, high = self.info.input_range
    return images.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)


def softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(axis=-1, keepdims=True)
  exp = np.exp(shifted, dtype=np.float32)
  return exp / exp.sum(axis=-1, keepdims=True)
