"""Test and benchmark data: paths to ../shared and realistic photos generated from it.

Nothing from ../shared is copied into the project; generated images are
random crops, scales, flips and colour shifts of the shared photos, re-encoded
as JPEG like an ImageNet-style corpus.
"""
import json
import os
import pathlib
from typing import List

import numpy as np
from PIL import Image, ImageEnhance

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('SHARED_DIR', ROOT.parent / 'shared'))
PHOTOS = SHARED / 'images' / 'photos'
GOLDEN = SHARED / 'images' / 'golden_mobilenet_v1_0.5_160_quant.json'
MODELS = SHARED / 'models'
LABELS = MODELS / 'imagenet_labels.txt'
HUB_CLASSIFIER = 'https://tfhub.dev/google/imagenet/mobilenet_v1_050_160/quantops/classification/1'
HUB_FEATURES = 'https://tfhub.dev/google/imagenet/mobilenet_v1_050_128/feature_vector/1'
HUB_DIRS = {
    HUB_CLASSIFIER: MODELS / 'hub' / 'mobilenet_v1_050_160_quantops_classification_1',
    HUB_FEATURES: MODELS / 'hub' / 'mobilenet_v1_050_128_feature_vector_1',
}
TFLITE_QUANT = MODELS / 'tflite' / 'mobilenet_v1_0.5_160_quant.tflite'
SAVED_MODEL_FLOAT = MODELS / 'saved_model' / 'mobilenet_v1_050_float'


def require_shared() -> None:
  """Tests need the real data; its absence is a failure, not a skip."""
  if not PHOTOS.is_dir() or not MODELS.is_dir():
    raise FileNotFoundError(f'test data missing: expected {PHOTOS} and {MODELS} (../shared beside the project)')


def golden() -> dict:
  return json.loads(GOLDEN.read_text())['images']


def photo_paths() -> List[pathlib.Path]:
  require_shared()
  return sorted(PHOTOS.iterdir())


def photo_batch(size, paths=None) -> np.ndarray:
  """uint8 [N, H, W, 3]: whole photos resized to (height, width) with Pillow bilinear, as the decode stage does."""
  images = [Image.open(p).convert('RGB').resize(size[::-1], Image.Resampling.BILINEAR)
            for p in (paths or photo_paths())]
  return np.stack([np.asarray(image) for image in images])


def photo_named(name: str) -> pathlib.Path:
  """'cat' -> ../shared/images/photos/cat.bmp."""
  return next(p for p in photo_paths() if p.stem == name)


def variant(photo: Image.Image, rng: np.random.Generator, size=(500, 375)) -> Image.Image:
  """A random crop, scale, flip and colour shift of a photo, at about `size`."""
  w, h = photo.size
  scale = rng.uniform(0.6, 1.0)
  cw, ch = int(w * scale), int(h * scale)
  x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
  image = photo.crop((x, y, x + cw, y + ch))
  jitter = rng.uniform(0.9, 1.1, size=2)
  image = image.resize((int(size[0] * jitter[0]), int(size[1] * jitter[1])), Image.Resampling.BILINEAR)
  if rng.random() < 0.5:
    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  image = ImageEnhance.Color(image).enhance(rng.uniform(0.7, 1.3))
  image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.8, 1.2))
  return image


def make_jpegs(directory: pathlib.Path, count: int, seed: int = 0, quality: int = 90,
               size=(500, 375)) -> List[pathlib.Path]:
  """Writes `count` JPEG variants of the shared photos into `directory`."""
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)
  photos = [Image.open(p).convert('RGB') for p in photo_paths()]
  paths = []
  for i in range(count):
    path = directory / f'img_{i:06d}.jpg'
    variant(photos[i % len(photos)], rng, size).save(path, 'JPEG', quality=quality)
    paths.append(path)
  return paths


def populate_hub_cache(cache_dir: pathlib.Path) -> pathlib.Path:
  """Lays out the shared Hub modules as tensorflow_hub caches them, so that real handles load offline."""
  import hashlib  # pylint: disable=import-outside-toplevel
  import shutil  # pylint: disable=import-outside-toplevel
  require_shared()
  for handle, source in HUB_DIRS.items():
    target = cache_dir / hashlib.sha1(handle.encode('utf-8')).hexdigest()
    if not target.exists():
      shutil.copytree(source, target)
  return cache_dir
