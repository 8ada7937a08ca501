"""Test data: realistic photos, image variants and records generated from ../shared (benchmarks/shared.py).

Nothing from ../shared is copied into the project; generated images are
random crops, scales, flips and colour shifts of the shared photos, re-encoded
as JPEG like an ImageNet-style corpus.
"""
import io
import json
import pathlib
import shutil
from typing import Dict, List

import numpy as np
from PIL import Image

# ../shared's layout, its photos and their variants, and the Hub cache belong to the benchmarks, which the
# tests may import (not the other way round); re-exported here for the tests.
from benchmarks.shared import (  # pylint: disable=unused-import
    GOLDEN, HUB_CLASSIFIER, HUB_DIRS, HUB_FEATURES, LABELS, MODELS, PHOTOS, ROOT, SAVED_MODEL_FLOAT, SHARED,
    TFLITE_QUANT, photo_paths, populate_hub_cache, require_shared, variant)


def golden() -> dict:
  return json.loads(GOLDEN.read_text())['images']


def photo_batch(size, paths=None) -> np.ndarray:
  """uint8 [N, H, W, 3]: whole photos resized to (height, width) with Pillow bilinear, as the decode stage does."""
  images = [Image.open(p).convert('RGB').resize(size[::-1], Image.Resampling.BILINEAR)
            for p in (paths or photo_paths())]
  return np.stack([np.asarray(image) for image in images])


def photo_named(name: str) -> pathlib.Path:
  """'cat' -> ../shared/images/photos/cat.bmp."""
  return next(p for p in photo_paths() if p.stem == name)


def make_jpegs(directory: pathlib.Path, count: int, seed: int = 0, quality: int = 90,
               size=(500, 375)) -> List[pathlib.Path]:
  """Writes `count` JPEG variants of the shared photos into `directory`."""
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  photos = [Image.open(p).convert('RGB') for p in photo_paths()]
  for photo in photos:
    photo.thumbnail((size[0] * 2, size[1] * 2))  # small variants need no full-size crops (and come fast)
  paths = []
  for i in range(count):
    path = directory / f'img_{i:06d}.jpg'
    variant(photos[i % len(photos)], rng, size).save(path, 'JPEG', quality=quality)
    paths.append(path)
  return paths


def _png16(pixels: np.ndarray) -> bytes:
  """A 16-bit PNG (gray, gray+alpha, RGB or RGBA by channel count): Pillow cannot write the colour ones."""
  import struct  # pylint: disable=import-outside-toplevel
  import zlib  # pylint: disable=import-outside-toplevel
  height, width, channels = pixels.shape
  color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
  raw = b''.join(b'\x00' + pixels[y].astype('>u2').tobytes() for y in range(height))

  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)

  header = struct.pack('>IIBBBBB', width, height, 16, color_type, 0, 0, 0)
  return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  image.save(buf, fmt, **kwargs)
  return buf.getvalue()


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  a = alpha.astype(np.float64)[..., None] / 255
  return np.rint(rgb * a + 255 * (1 - a)).astype(np.uint8)


# Display = EXIF_TURNS[n](stored), from the EXIF spec's orientation tags, independent of Pillow.
EXIF_TURNS = {
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def image_variants(seed: int = 0, size=(48, 32)) -> dict:
  """name -> (encoded bytes, the RGB uint8 pixels a viewer shows, allowed max abs difference).

  References are computed with numpy from the stored samples (palettes looked up, alpha
  composited over white, 16-bit samples' high byte, CMYK by the standard formula, EXIF
  orientations turned), not with the code under test. Non-square, so that a wrong turn shows.
  """
  rng = np.random.default_rng(seed)
  photo = Image.open(photo_paths()[seed % len(photo_paths())]).convert('RGB')
  base = np.asarray(photo.resize(size, Image.Resampling.BILINEAR))
  height, width = base.shape[:2]
  alpha = rng.integers(0, 256, (height, width), dtype=np.uint8)
  alpha[:, :4], alpha[:, -4:] = 0, 255  # fully transparent and fully opaque columns too
  out = {}
  for n, turn in EXIF_TURNS.items():
    exif = Image.Exif()
    exif[0x0112] = n
    data = _encode(Image.fromarray(base), 'JPEG', quality=95, exif=exif)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))  # as coded, orientation ignored
    out[f'exif_orientation_{n}'] = (data, turn(stored), 0)
  cmyk = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
  data = _encode(Image.fromarray(cmyk, 'CMYK'), 'JPEG', quality=100)
  stored = np.asarray(Image.open(io.BytesIO(data))).astype(np.float64)  # CMYK samples as coded
  rgb = np.rint((255 - stored[..., :3]) * (255 - stored[..., 3:]) / 255).astype(np.uint8)
  out['cmyk_jpeg'] = (data, rgb, 1)
  gray16 = rng.integers(0, 65536, (height, width), dtype=np.uint16)
  out['gray_16bit_png'] = (_encode(Image.fromarray(gray16), 'PNG'),
                           np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, axis=2), 0)
  rgb16 = rng.integers(0, 65536, (height, width, 3), dtype=np.uint16)
  out['rgb_16bit_png'] = (_png16(rgb16), (rgb16 >> 8).astype(np.uint8), 0)
  palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
  palette_alpha = rng.integers(0, 256, 256, dtype=np.uint8)
  palette_alpha[0] = 0
  indices = rng.integers(0, 256, (height, width), dtype=np.uint8)
  paletted = Image.fromarray(indices, 'P')
  paletted.putpalette(palette.tobytes())
  out['palette_alpha_png'] = (_encode(paletted, 'PNG', transparency=palette_alpha.tobytes()),
                              _over_white(palette[indices], palette_alpha[indices]), 1)
  rgba = Image.fromarray(np.dstack([base, alpha]), 'RGBA')
  out['rgba_png'] = (_encode(rgba, 'PNG'), _over_white(base, alpha), 1)
  gray = base[..., 1]
  out['gray_png'] = (_encode(Image.fromarray(gray, 'L'), 'PNG'), np.repeat(gray[..., None], 3, axis=2), 0)
  out['gray_alpha_png'] = (_encode(Image.fromarray(np.dstack([gray, alpha]), 'LA'), 'PNG'),
                           _over_white(np.repeat(gray[..., None], 3, axis=2), alpha), 1)
  second = Image.fromarray(255 - indices, 'P')
  second.putpalette(palette.tobytes())
  out['gif_first_frame'] = (_encode(paletted, 'GIF', save_all=True, append_images=[second], optimize=False),
                            palette[indices], 0)
  out['webp_lossless'] = (_encode(Image.fromarray(base), 'WEBP', lossless=True), base, 0)
  out['webp_alpha'] = (_encode(rgba, 'WEBP', lossless=True, exact=True), _over_white(base, alpha), 1)
  out['bmp'] = (_encode(Image.fromarray(base), 'BMP'), base, 0)
  return out


def example(**features) -> bytes:
  """A serialized tf.train.Example built by TF itself; `a__b=` names feature 'a/b'. Values: lists of
  bytes, ints or floats."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  def feature(values):
    if values and isinstance(values[0], float):
      return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if values and isinstance(values[0], int):
      return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

  return tf.train.Example(features=tf.train.Features(
      feature={k.replace('__', '/'): feature(v) for k, v in features.items()})).SerializeToString()


def write_tfrecord(path: pathlib.Path, records, gzip: bool = False) -> pathlib.Path:
  """Writes serialized records with TF's own writer, so readers are tested against the reference format."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  with tf.io.TFRecordWriter(str(path), options='GZIP' if gzip else None) as writer:
    for record in records:
      writer.write(record)
  return path


def photo_folder(root: pathlib.Path, others: Dict[str, str]) -> pathlib.Path:
  """The shared photos in root/photos, the last two in a subfolder `sub`, beside files that are not images
  ({path under the folder: text})."""
  folder = root / 'photos'
  (folder / 'sub').mkdir(parents=True)
  paths = photo_paths()
  for path in paths[:4]:
    shutil.copy(path, folder / path.name)
  for path in paths[4:]:
    shutil.copy(path, folder / 'sub' / path.name)
  for name, text in others.items():
    (folder / name).write_text(text)
  return folder
