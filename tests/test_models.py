"""Model backends on real weights from ../shared/models."""
import numpy as np
import pytest
from PIL import Image

from transforms import models
from tests import datagen


def _photo_batch(size):
  images = [Image.open(p).convert('RGB').resize(size[::-1], Image.Resampling.BILINEAR) for p in datagen.photo_paths()]
  return np.stack([np.asarray(i) for i in images])


def test_tf1_hub_both_outputs_from_one_forward_pass():
  model = models.load(models.ModelSpec(str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]), models.BOTH))
  info = model.info
  assert (info.format, info.input_size, info.input_range) == ('tf1_hub', (160, 160), (0.0, 1.0))
  assert (info.num_classes, info.embedding_dim) == (1001, 512)
  out = model.predict(_photo_batch(info.input_size))
  assert out.probabilities.shape == (6, 1001) and out.embedding.shape == (6, 512)
  assert np.allclose(out.probabilities.sum(axis=1), 1.0, atol=1e-4)
  embed_only = models.load(models.ModelSpec(str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]), models.EMBED))
  assert np.allclose(embed_only.predict(_photo_batch(info.input_size)).embedding, out.embedding, atol=1e-4)


def test_feature_module_cannot_classify():
  with pytest.raises(models.ModelError, match='no signature for classification'):
    models.load(models.ModelSpec(str(datagen.HUB_DIRS[datagen.HUB_FEATURES]), models.CLASSIFY))


def test_short_handle_resolves_through_the_hub_cache():
  model = models.load(models.ModelSpec('google/imagenet/mobilenet_v1_050_128/feature_vector/1', models.EMBED))
  assert model.info.input_size == (128, 128) and model.info.embedding_dim == 512
