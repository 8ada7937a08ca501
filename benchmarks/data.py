"""The benchmark's data set, made once and cached under bench_data/ (git-ignored).

ImageNet-like JPEGs (about 500x375, quality 90) made of real photo content:
random crops, scales, flips and colour shifts of ../shared/images/photos
(benchmarks/shared.variant), re-encoded. Image i depends only on (seed, i), so a
larger set extends a smaller one and the work splits over all cores. For N
images the benchmark reads `files-N/` (hard links to the cached JPEGs, so that
a plain glob names exactly N files, as Beam's MatchFiles needs) and the same
images packed by the project's packer (pipeline/pack.py) into
`tfrecord-N/shard-*.tfrecord`, WebDataset `tar-N/shard-*.tar` and Hugging
Face-layout Parquet tables `parquet-N/shard-*.parquet`.
"""
import multiprocessing
import os
import pathlib
from typing import List, NamedTuple

import numpy as np
from PIL import Image

from benchmarks import shared
from pipeline import pack
from transforms.read.formats import detect

ROOT = shared.ROOT / 'bench_data'
SEED = 2024
QUALITY = 90
SIZE = (500, 375)
IMAGES_PER_SHARD = 1000  # TFRecord shards (cut into byte ranges when read)
TAR_IMAGES_PER_SHARD = 500  # tar shards, each one read unit
PARQUET_IMAGES_PER_SHARD = 1000  # Parquet tables, in row groups of pack.PARQUET_ROWS_PER_GROUP (one unit each)

_photos: List[Image.Image] = []


class DataSet(NamedTuple):
  count: int
  files: str  # glob naming exactly `count` JPEG files
  tfrecord: str  # glob naming the TFRecord shards holding the same images
  tar: str  # glob naming WebDataset tar shards holding the same images
  parquet: str  # glob naming Parquet tables (an id column, an image struct) holding the same images


def _load_photos() -> None:
  _photos.extend(Image.open(p).convert('RGB') for p in shared.photo_paths())


def _make(path: str) -> None:
  i = int(pathlib.Path(path).stem.rsplit('_', 1)[1])
  rng = np.random.default_rng([SEED, i])
  shared.variant(_photos[i % len(_photos)], rng, SIZE).save(path + '.partial', 'JPEG', quality=QUALITY)
  os.replace(path + '.partial', path)  # an interrupted run never leaves a truncated JPEG behind


def _jpegs(count: int, root: pathlib.Path) -> List[pathlib.Path]:
  """The first `count` cached JPEGs, making the missing ones on all cores."""
  cache = root / 'jpegs'
  cache.mkdir(parents=True, exist_ok=True)
  paths = [cache / f'img_{i:06d}.jpg' for i in range(count)]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    with multiprocessing.Pool(initializer=_load_photos) as pool:
      pool.map(_make, missing, chunksize=64)
  return paths


def _linked(paths: List[pathlib.Path], directory: pathlib.Path) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  for path in paths:
    link = directory / path.name
    if not link.exists():
      os.link(path, link)


def make(count: int, root: pathlib.Path = ROOT) -> DataSet:
  """The data set of `count` images, as files, TFRecord, tar and Parquet shards; cached under root, so cheap once
  made."""
  shared.require_shared()
  paths = _jpegs(count, root)
  files = root / f'files-{count}'
  _linked(paths, files)
  globs = {}
  for fmt, extension, per_shard in ((detect.TFRECORD, 'tfrecord', IMAGES_PER_SHARD),
                                   (detect.TAR, 'tar', TAR_IMAGES_PER_SHARD),
                                   (detect.PARQUET, 'parquet', PARQUET_IMAGES_PER_SHARD)):
    shards = root / f'{extension}-{count}'
    done = shards / 'DONE'
    if not done.exists():
      shards.mkdir(parents=True, exist_ok=True)
      for old in shards.glob('shard-*'):
        old.unlink()
      pack.pack([str(files)], str(shards / 'shard'), fmt, per_shard)
      done.write_text(f'{count}\n')
    globs[fmt] = str(shards / f'shard-*.{extension}')
  return DataSet(count, str(files / '*.jpg'), globs[detect.TFRECORD], globs[detect.TAR], globs[detect.PARQUET])
