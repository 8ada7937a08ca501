"""SavedModel backend on the shared float MobileNet: any input size, outputs by name."""
import numpy as np
import pytest

from tests import datagen
from tests.counting import count_forward
from transforms.infer import models

FLOAT = str(datagen.SAVED_MODEL_FLOAT)


def _load(task=models.BOTH, **kwargs):
  return models.load(models.ModelSpec(FLOAT, task, **kwargs))


def test_any_size_model_takes_image_size_or_the_default():
  model = _load()
  info = model.info
  assert (info.format, info.input_size, info.input_size_fixed) == ('saved_model', (224, 224), False)
  assert (info.classes_output, info.embedding_output) == ('serving_default:probabilities',
                                                          'serving_default:feature_vector')
  assert {'serving_default:logits', '__call__'} <= set(info.outputs)
  assert _load(image_size=160).info.input_size == (160, 160)
  out = _load(image_size=128).predict(datagen.photo_batch((128, 128)))
  assert out.probabilities.shape == (6, 1001) and out.embedding.shape == (6, 512)


def test_both_outputs_from_one_call_and_outputs_by_name(monkeypatch):
  model = _load(image_size=160)
  images = datagen.photo_batch((160, 160))
  counter = count_forward(monkeypatch, model)
  out = model.predict(images)
  assert counter.calls == 1
  from_logits = _load(models.CLASSIFY, image_size=160, classes_output='logits').predict(images)
  assert np.allclose(from_logits.probabilities, out.probabilities, atol=1e-5)  # softmaxed logits = probabilities
  from_call = _load(models.EMBED, image_size=160, embedding_output='__call__').predict(images)
  assert np.allclose(from_call.embedding, out.embedding, atol=1e-5)
  named = _load(models.EMBED, image_size=160, embedding_output='serving_default:feature_vector').predict(images)
  assert np.array_equal(named.embedding, out.embedding)


def test_outputs_that_need_two_passes_or_do_not_exist_are_refused():
  with pytest.raises(models.ModelError, match='no single function gives probabilities and __call__'):
    _load(models.BOTH, embedding_output='__call__')
  with pytest.raises(models.ModelError, match=r'no output for classification: looked for scores \(--classes_'):
    _load(models.CLASSIFY, classes_output='scores')
