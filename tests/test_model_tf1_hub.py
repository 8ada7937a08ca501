"""TF1 Hub backend on the shared modules, by path and by their real handles."""
import numpy as np
import pytest

from tests import datagen
from tests.counting import count_forward
from transforms.infer import models

CLASSIFIER = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])


def test_signatures_by_task_and_both_outputs_from_one_forward_pass(monkeypatch):
  model = models.load(models.ModelSpec(CLASSIFIER, models.BOTH))
  info = model.info
  assert (info.format, info.input_size, info.input_range) == ('tf1_hub', (160, 160), (0.0, 1.0))
  assert (info.num_classes, info.embedding_dim) == (1001, 512)
  assert (info.classes_output, info.embedding_output) == ('image_classification', 'image_feature_vector')
  images = datagen.photo_batch(info.input_size)
  counter = count_forward(monkeypatch, model)
  out = model.predict(images)
  assert counter.calls == 1
  assert out.probabilities.shape == (6, 1001) and out.embedding.shape == (6, 512)
  assert np.allclose(out.probabilities.sum(axis=1), 1.0, atol=1e-4)  # logits, softmaxed
  embed_only = models.load(models.ModelSpec(CLASSIFIER, models.EMBED)).predict(images)
  classify_only = models.load(models.ModelSpec(CLASSIFIER, models.CLASSIFY)).predict(images)
  assert np.allclose(embed_only.embedding, out.embedding, atol=1e-4)
  assert np.allclose(classify_only.probabilities, out.probabilities, atol=1e-6)


def test_outputs_by_signature_name_and_input_range_option():
  images = datagen.photo_batch((160, 160))
  model = models.load(models.ModelSpec(CLASSIFIER, models.BOTH, embedding_output='image_classification:default'))
  out = model.predict(images)
  assert model.info.embedding_dim == 1001  # the logits, as asked
  assert np.array_equal(out.embedding.argmax(axis=1), out.probabilities.argmax(axis=1))
  shifted = models.load(models.ModelSpec(CLASSIFIER, models.EMBED, input_range=(-1.0, 1.0)))
  assert shifted.info.input_range == (-1.0, 1.0)
  default = models.load(models.ModelSpec(CLASSIFIER, models.EMBED)).predict(images).embedding
  assert not np.allclose(shifted.predict(images).embedding, default, atol=1e-2)


def test_feature_module_cannot_classify():
  with pytest.raises(models.ModelError, match='no signature for classification'):
    models.load(models.ModelSpec(str(datagen.HUB_DIRS[datagen.HUB_FEATURES]), models.CLASSIFY))


def test_wrong_image_size_and_unknown_output_are_refused():
  with pytest.raises(models.ModelError, match='input size mismatch: --image_size 224 given, but the model takes '
                     'only 160x160 images'):
    models.load(models.ModelSpec(CLASSIFIER, models.CLASSIFY, image_size=224))
  with pytest.raises(models.ModelError, match="signature 'image_feature_vector' has no output 'pooled'"):
    models.load(models.ModelSpec(CLASSIFIER, models.EMBED, embedding_output='image_feature_vector:pooled'))


def test_short_handle_resolves_through_the_hub_cache():
  model = models.load(models.ModelSpec('google/imagenet/mobilenet_v1_050_128/feature_vector/1', models.EMBED))
  assert model.info.input_size == (128, 128) and model.info.embedding_dim == 512
