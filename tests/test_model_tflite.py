"""TFLite backend: the official quantized MobileNet through LiteRT, and a float model converted in the test."""
import numpy as np
import pytest

from tests import datagen
from tests.counting import count_forward
from transforms.infer import models
from transforms.format import top_k

AVGPOOL = 'MobilenetV1/Logits/AvgPool_1a/AvgPool'


def _load(task=models.BOTH, **kwargs):
  return models.load(models.ModelSpec(str(datagen.TFLITE_QUANT), task, num_threads=1, **kwargs))


def test_quantized_model_reads_its_input_quantization_and_matches_golden_top5():
  model = _load()
  info = model.info
  assert (info.format, info.input_size, info.input_size_fixed) == ('tflite', (160, 160), True)
  assert info.input_range == (-1.0, 127 / 128)  # (0 - 128) / 128 .. (255 - 128) / 128, from the file
  assert (info.num_classes, info.embedding_dim, info.embedding_output) == (1001, 512, AVGPOOL)
  out = model.predict(datagen.photo_batch(info.input_size))
  golden = datagen.golden()
  for i, path in enumerate(datagen.photo_paths()):
    expected = golden[path.name]['pil_bilinear']
    assert top_k(out.probabilities[i], 5).tolist() == [e['index'] for e in expected], path.name
    assert np.allclose(np.sort(out.probabilities[i])[::-1][:5], [e['score'] for e in expected], atol=1e-4)
  assert out.embedding.shape == (6, 512) and out.embedding.dtype == np.float32
  assert np.all(out.embedding >= 0) and len(np.unique(out.embedding)) > 100  # dequantized ReLU6 features


def test_both_outputs_from_one_invoke_per_image(monkeypatch):
  model = _load()
  images = datagen.photo_batch(model.info.input_size)
  counter = count_forward(monkeypatch, model)
  both = model.predict(images)
  assert counter.calls == len(images)  # batch fixed at 1 in the file: one invoke per image gives both outputs
  classify, embed = _load(models.CLASSIFY).predict(images), _load(models.EMBED).predict(images)
  assert classify.embedding is None and embed.probabilities is None
  assert np.array_equal(both.probabilities, classify.probabilities)
  assert np.array_equal(both.embedding, embed.embedding)


def test_embedding_tensor_is_chosen_by_name():
  images = datagen.photo_batch((160, 160))
  default = _load(models.EMBED).predict(images).embedding
  assert np.array_equal(_load(models.EMBED, embedding_output=AVGPOOL).predict(images).embedding, default)
  logits = _load(models.BOTH, embedding_output='MobilenetV1/Logits/SpatialSqueeze1')
  out = logits.predict(images)
  assert logits.info.embedding_dim == 1001
  assert np.array_equal(out.embedding.argmax(axis=1), out.probabilities.argmax(axis=1))


@pytest.fixture(scope='module', name='float_tflite')
def float_tflite_fixture(tmp_path_factory):
  """The shared float SavedModel converted to TFLite: float input, any batch and size, named outputs."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  converter = tf.lite.TFLiteConverter.from_saved_model(str(datagen.SAVED_MODEL_FLOAT), ['serving_default'])
  path = tmp_path_factory.mktemp('tflite') / 'mobilenet_float.tflite'
  path.write_bytes(converter.convert())
  return path


def test_float_model_with_dynamic_batch_runs_each_batch_in_one_invoke(monkeypatch, float_tflite):
  model = models.load(models.ModelSpec(str(float_tflite), models.BOTH, image_size=160, num_threads=1))
  info = model.info
  assert (info.input_size, info.input_size_fixed, info.input_range) == ((160, 160), False, (0.0, 1.0))
  assert (info.classes_output, info.embedding_output) == ('probabilities', 'feature_vector')
  images = datagen.photo_batch((160, 160))
  counter = count_forward(monkeypatch, model)
  out = model.predict(images)
  assert counter.calls == 1
  assert len(model.predict(images[:2]).probabilities) == 2  # the batch dimension follows the input
  reference = models.load(models.ModelSpec(str(datagen.SAVED_MODEL_FLOAT), models.BOTH, image_size=160))
  expected = reference.predict(images)
  assert np.allclose(out.probabilities, expected.probabilities, atol=1e-4)
  assert np.allclose(out.embedding, expected.embedding, atol=1e-3)


def test_quantized_model_refuses_an_input_range_and_a_wrong_size():
  with pytest.raises(models.ModelError, match='--input_range does not apply: the model takes uint8 pixels'):
    _load(input_range=(-1.0, 1.0))
  with pytest.raises(models.ModelError, match='input size mismatch: --image_size 224 given, but the model takes '
                     'only 160x160 images'):
    _load(image_size=224)
  with pytest.raises(models.ModelError, match="no tensor named 'pool' \\(--embedding_output\\)"):
    _load(embedding_output='pool')
