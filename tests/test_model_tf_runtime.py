"""--tf_runtime tflite: the TF models converted to float TFLite at load time agree with TensorFlow's run."""
import dataclasses
import logging

import numpy as np
import pytest

from tests import datagen
from transforms.infer import models
from transforms.infer.models import to_tflite

CASES = [(str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]), None), (str(datagen.SAVED_MODEL_FLOAT), 160)]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize('location, image_size', CASES)
def test_converted_model_agrees_with_tensorflow_on_the_shared_photos(location, image_size):
  spec = models.ModelSpec(location, models.BOTH, image_size=image_size, num_threads=1)
  reference = models.load(spec)
  converted = models.load(dataclasses.replace(spec, tf_runtime='tflite'))
  assert converted._lite is not None  # pylint: disable=protected-access  # it runs on LiteRT
  assert converted.info == dataclasses.replace(reference.info, description=converted.info.description)
  assert converted.info.description.endswith('; converted to float TFLite, run by LiteRT')
  images = datagen.photo_batch(reference.info.input_size)
  want, got = reference.predict(images), converted.predict(images)
  assert np.array_equal(got.probabilities.argmax(axis=1), want.probabilities.argmax(axis=1))
  assert np.all(_cosine(got.embedding, want.embedding) >= 0.999)
  assert np.abs(got.probabilities - want.probabilities).max() < 1e-4
  odd = converted.predict(images[:5])  # another batch size resizes the interpreter
  assert np.allclose(odd.embedding, got.embedding[:5], atol=1e-4)


def test_a_failed_conversion_leaves_the_model_on_tensorflow(monkeypatch, caplog):
  def refuse(*_):
    raise RuntimeError('converter says no')
  monkeypatch.setattr(to_tflite, 'convert_function', refuse)
  location = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
  with caplog.at_level(logging.WARNING):
    model = models.load(models.ModelSpec(location, models.CLASSIFY, tf_runtime='tflite'))
  assert model._lite is None  # pylint: disable=protected-access
  assert model.info.description.endswith('; run by TensorFlow (the conversion failed)')
  assert 'float TFLite conversion failed, running on TensorFlow: converter says no' in caplog.text
  assert model.predict(datagen.photo_batch(model.info.input_size)).probabilities.shape == (6, 1001)
