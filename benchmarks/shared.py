"""The real models and photos in ../shared (beside the project, or $SHARED_DIR), for the benchmarks and the tests.

Nothing from ../shared is copied into the project: this module knows where
things are in it, lists its photos, makes realistic variants of them (random
crops, scales, flips and colour shifts, as in an ImageNet-style corpus) and
lays out its TF-Hub modules as a Hub cache. The tests import it through
tests/datagen.py; the benchmarks import nothing from tests/.
"""
import hashlib
import os
import pathlib
import shutil
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
  """The real data is needed; its absence is a failure, not a skip."""
  if not PHOTOS.is_dir() or not MODELS.is_dir():
    raise FileNotFoundError(f'test data missing: expected {PHOTOS} and {MODELS} (../shared beside the project)')


def photo_paths() -> List[pathlib.Path]:
  require_shared()
  return sorted(PHOTOS.iterdir())


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


def populate_hub_cache(cache_dir: pathlib.Path) -> pathlib.Path:
  """Lays out the shared Hub modules as tensorflow_hub caches them, so that real handles load offline."""
  require_shared()
  for handle, source in HUB_DIRS.items():
    target = cache_dir / hashlib.sha1(handle.encode('utf-8')).hexdigest()
    if not target.exists():
      shutil.copytree(source, target)
  return cache_dir
