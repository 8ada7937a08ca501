"""The float backends (TF1 Hub, SavedModel) agree with the official quantized TFLite model."""
import numpy as np
import pytest

from tests import datagen
from transforms.infer import models

GOLDEN_TOP1_PHOTOS = ('bird', 'cat', 'hot_dog', 'missvickie_potato_chips')


@pytest.fixture(scope='module', name='tflite')
def tflite_fixture():
  model = models.load(models.ModelSpec(str(datagen.TFLITE_QUANT), models.BOTH))
  return model.predict(datagen.photo_batch(model.info.input_size))


@pytest.mark.parametrize('location, image_size', [
    (datagen.HUB_CLASSIFIER, None),  # by its handle, through the hub cache; fixed at 160
    (str(datagen.SAVED_MODEL_FLOAT), 160),
])
def test_float_backend_agrees_with_tflite(tflite, location, image_size):
  model = models.load(models.ModelSpec(location, models.BOTH, image_size=image_size))
  assert model.info.input_size == (160, 160)
  out = model.predict(datagen.photo_batch((160, 160)))
  names = [p.stem for p in datagen.photo_paths()]
  for name in GOLDEN_TOP1_PHOTOS:
    i = names.index(name)
    assert out.probabilities[i].argmax() == tflite.probabilities[i].argmax(), name
  cosine = np.sum(out.embedding * tflite.embedding, axis=1) / (
      np.linalg.norm(out.embedding, axis=1) * np.linalg.norm(tflite.embedding, axis=1))
  assert np.all(cosine >= 0.99), dict(zip(names, cosine.round(4)))
