"""Decode stage: bytes -> RGB uint8 pixels at the model's input size.

Resizing here, right after decoding, means only model-sized arrays travel to
inference. The value range is the model's business (models.base.scale), done
once per batch.
"""
import io
from typing import Iterable, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from PIL import Image, ImageOps

from transforms import records

RESIZE_METHODS = {
    'bilinear': Image.Resampling.BILINEAR,
    'bicubic': Image.Resampling.BICUBIC,
    'nearest': Image.Resampling.NEAREST,
    'area': Image.Resampling.BOX,
    'lanczos': Image.Resampling.LANCZOS,
}


class DecodeError(ValueError):
  """The bytes are not an image we can read."""


def open_image(data: bytes) -> Image.Image:
  """Decodes fully (Pillow is lazy) and applies EXIF orientation."""
  if not data:
    raise DecodeError('empty file: no image bytes')
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as e:  # Pillow raises many types for bad data
    raise DecodeError(f'not a readable image ({type(e).__name__}: {e})') from e
  try:
    return ImageOps.exif_transpose(image)
  except Exception:  # pylint: disable=broad-except
    return image  # a broken EXIF block loses the orientation, not the image


def to_rgb(image: Image.Image) -> Image.Image:
  return image if image.mode == 'RGB' else image.convert('RGB')


def resize(image: Image.Image, size: Tuple[int, int], method: str) -> np.ndarray:
  """(height, width) uint8 RGB array; the whole image, no crop, as TF-Hub image models expect."""
  height, width = size
  if image.size != (width, height):
    image = image.resize((width, height), RESIZE_METHODS[method])
  return np.asarray(image, dtype=np.uint8)


class DecodeImages(beam.DoFn):
  """EncodedImage -> DecodedImage; failures go to the errors output with their stage."""

  def __init__(self, size: Tuple[int, int], method: str = 'bilinear'):
    self._size = tuple(size)
    self._method = method
    self._decoded = Metrics.counter('images', 'images_decoded')

  def process(self, element: records.EncodedImage) -> Iterable:
    ref = element.ref
    try:
      image = open_image(element.data)
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(records.ERRORS_TAG, records.error_for(ref, records.DECODE, e))
      return
    try:
      width, height = image.size
      pixels = resize(to_rgb(image), self._size, self._method)
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(records.ERRORS_TAG, records.error_for(ref, records.PREPROCESS, e))
      return
    self._decoded.inc()
    yield records.DecodedImage(ref, width, height, pixels)
