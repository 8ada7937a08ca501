"""Decode stage: bytes -> RGB uint8 pixels at the model's input size.

Resizing here, right after decoding, means only model-sized arrays travel to
inference. The value range is the model's business (models.base.scale), done
once per batch.

JPEGs are decoded at reduced size in the DCT domain (Pillow's draft: 1/2,
1/4 or 1/8 scale, chosen so that the image stays at least the model's size)
before the antialiased resize: on ImageNet-sized photos for a 160x160 model
this halves the decode stage's time, and changes predictions less than
switching the resize filter does (docs/benchmarks.md has the numbers).

Each image's decode is bounded in time (--decode_timeout_seconds): it runs on
one helper thread per DoFn instance, reused from image to image, and an image
not done in time becomes a decode error row while the job goes on
(transforms/watchdog.py).
"""
import io
from typing import Iterable, Optional, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from PIL import ExifTags, Image, ImageOps

from transforms import elements, watchdog

RESIZE_METHODS = {
    'bilinear': Image.Resampling.BILINEAR,
    'bicubic': Image.Resampling.BICUBIC,
    'nearest': Image.Resampling.NEAREST,
    'area': Image.Resampling.BOX,
    'lanczos': Image.Resampling.LANCZOS,
}
DEFAULT_RESIZE_METHOD = 'bilinear'  # antialiases when shrinking, as the golden results assume


# Decompression bombs: an image whose header claims more pixels than this is refused before any pixel is
# decoded, whatever its format. Pillow's own global check (a warning, then an error at twice its limit)
# is replaced by this one exact limit, which --max_image_pixels sets.
MAX_IMAGE_PIXELS = 100_000_000
Image.MAX_IMAGE_PIXELS = None


# Longest a single image may take to decode and resize (--decode_timeout_seconds; 0: no bound). A 100-megapixel
# image takes seconds; far longer means a crafted or pathological file, or a decoder that hangs.
DECODE_TIMEOUT_SECONDS = 120


class DecodeError(ValueError):
  """The bytes are not an image we can read."""


class DecodeTimeout(DecodeError):
  """Decoding one image took longer than --decode_timeout_seconds."""


def _explain(e: Exception, fmt: Optional[str] = None) -> str:
  """Pillow's error in a user's words, with Pillow's own text kept for the details."""
  what = f'{fmt} image' if fmt else 'image'
  text = str(e)
  if 'runcated' in text:
    return f'truncated {what}: the data ends early ({type(e).__name__}: {text})'
  if 'checksum' in text or 'crc' in text.lower():
    return f'corrupt {what}: a checksum does not match ({type(e).__name__}: {text})'
  return f'not a readable {what} ({type(e).__name__}: {text})'


def open_image(data: bytes, max_pixels: Optional[int] = MAX_IMAGE_PIXELS,
               reduce_to: Optional[Tuple[int, int]] = None) -> Image.Image:
  """Decodes fully (Pillow is lazy) and applies EXIF orientation; with reduce_to (height, width), a JPEG at
  least twice that size is decoded at reduced scale (see _reduce)."""
  if not data:
    raise DecodeError('empty file: no image bytes')
  try:
    image = Image.open(io.BytesIO(data))  # reads the header only
  except Image.UnidentifiedImageError as e:
    raise DecodeError(f'not an image: its bytes match no image format (they begin {data[:24]!r})') from e
  except Exception as e:  # Pillow raises many types for bad data
    raise DecodeError(_explain(e)) from e
  width, height = image.size
  if max_pixels and width * height > max_pixels:
    raise DecodeError(f'image too large: {width}x{height} = {width * height:,} pixels, over the limit of '
                      f'{max_pixels:,} (--max_image_pixels); refused undecoded, as it may be a decompression bomb')
  if reduce_to:
    _reduce(image, reduce_to)
  try:
    if image.format == 'PNG':  # Pillow's decoder does not check chunk CRCs; verify() does
      Image.open(io.BytesIO(data)).verify()
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    raise DecodeError(_explain(e, image.format)) from e
  try:
    return ImageOps.exif_transpose(image)
  except Exception:  # pylint: disable=broad-except
    return image  # a broken EXIF block loses the orientation, not the image


FULL_SIZE = 'full_size'  # Image.info key: (width, height) as displayed, of an image decoded at reduced scale
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def _reduce(image: Image.Image, size: Tuple[int, int]) -> None:
  """Before loading: a JPEG decodes at 1/2, 1/4 or 1/8 scale, the smallest that keeps it at least `size`.

  libjpeg scales in the DCT domain, so decoding gets cheaper and the resize that
  follows has fewer pixels to average. The full size as displayed goes to
  image.info[FULL_SIZE] (info survives load, transposes and copies).
  """
  if image.format != 'JPEG':
    return
  full = image.size
  image.draft(image.mode, (size[1], size[0]))
  if image.size == full:
    return
  try:
    turned = image.getexif().get(ExifTags.Base.Orientation) in _QUARTER_TURNS
  except Exception:  # pylint: disable=broad-except
    turned = False  # exif_transpose fails alike and leaves the image as stored
  image.info[FULL_SIZE] = full[::-1] if turned else full


BACKGROUND = (255, 255, 255)  # what transparent pixels become
_ALPHA_MODES = ('RGBA', 'RGBa', 'LA', 'La', 'PA')


def to_rgb(image: Image.Image) -> Image.Image:
  """8-bit RGB as a viewer shows the image.

  Transparency is composited over white, as img2dataset does (dropping alpha, as
  TF's decoders do, would expose whatever colour the encoder left in invisible
  pixels). 16-bit samples keep their high byte, as Pillow does for 16-bit
  colour and tf.image.convert_image_dtype for any 16-bit image: scaled, never
  clipped. Grayscale is replicated, palettes expanded, CMYK converted with the
  standard formula R = (255 - C)(255 - K) / 255 (embedded ICC profiles are not
  applied).
  """
  mode = image.mode
  if mode == 'RGB':
    return image
  if mode == 'I' or mode.startswith('I;16'):
    high_byte = np.clip(np.asarray(image), 0, 65535) >> 8
    return Image.fromarray(high_byte.astype(np.uint8), 'L').convert('RGB')
  if mode in _ALPHA_MODES or (mode in ('P', 'L') and 'transparency' in image.info):
    rgba = image.convert('RGBA')
    background = Image.new('RGBA', rgba.size, BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert('RGB')
  return image.convert('RGB')


def decode(data: bytes, size: Tuple[int, int], method: str = DEFAULT_RESIZE_METHOD,
           max_pixels: Optional[int] = MAX_IMAGE_PIXELS) -> np.ndarray:
  """Bytes -> uint8 [height, width, 3] pixels exactly as the decode stage makes them, for code outside Beam."""
  return resize(to_rgb(open_image(data, max_pixels, size)), size, method)


def resize(image: Image.Image, size: Tuple[int, int], method: str) -> np.ndarray:
  """(height, width) uint8 RGB array; the whole image, no crop, as TF-Hub image models expect."""
  height, width = size
  if image.size != (width, height):
    image = image.resize((width, height), RESIZE_METHODS[method])
  return np.asarray(image, dtype=np.uint8)


def _decode_one(data: bytes, size: Tuple[int, int], method: str, max_pixels: int):
  """(None, (width, height, pixels)) or (stage, exception): the failure keeps the stage it happened in."""
  try:
    image = open_image(data, max_pixels, size)
  except Exception as e:  # pylint: disable=broad-except
    return elements.DECODE, e
  try:
    width, height = image.info.get(FULL_SIZE, image.size)
    return None, (width, height, resize(to_rgb(image), size, method))
  except Exception as e:  # pylint: disable=broad-except
    return elements.PREPROCESS, e


class DecodeImages(beam.DoFn):
  """EncodedImage -> DecodedImage, or a decode error (ErrorRecord) when it fails or is not decoded within timeout
  seconds (0: no bound). Error records and unit ends pass through: one line, no Flatten, keeps a read unit's
  elements in one bundle (transforms/read/units.py)."""

  def __init__(self, size: Tuple[int, int], method: str = DEFAULT_RESIZE_METHOD, max_pixels: int = MAX_IMAGE_PIXELS,
               timeout: float = DECODE_TIMEOUT_SECONDS):
    self._size = tuple(size)
    self._method = method
    self._max_pixels = max_pixels
    self._timeout = timeout
    self._watchdog: Optional[watchdog.Watchdog] = None
    self._decoded = Metrics.counter('images', 'images_decoded')

  def setup(self):
    self._watchdog = watchdog.Watchdog('decode') if self._timeout else None

  def process(self, element) -> Iterable:
    if not isinstance(element, elements.EncodedImage):
      yield element
      return
    ref = element.ref
    args = (element.data, self._size, self._method, self._max_pixels)
    try:
      stage, result = self._watchdog.call(self._timeout, _decode_one, *args) if self._watchdog \
          else _decode_one(*args)
    except watchdog.TimedOut:
      stage, result = elements.DECODE, DecodeTimeout(
          f'decoding timed out: not done in {self._timeout:g} s (--decode_timeout_seconds); the image may be '
          'crafted to be slow to decode')
    if stage is not None:
      yield elements.error_for(ref, stage, result)
      return
    self._decoded.inc()
    width, height, pixels = result
    yield elements.DecodedImage(ref, width, height, pixels)

  def teardown(self):
    if self._watchdog:
      self._watchdog.close()
