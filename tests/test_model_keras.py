"""Keras backend on .keras files made in the tests from the shared weights (tests/keras_models.py)."""
import numpy as np
import pytest

from tests import datagen, keras_models
from tests.counting import count_forward
from transforms.infer import models


def _load(path, task=models.BOTH, **kwargs):
  return models.load(models.ModelSpec(str(path), task, image_size=160, **kwargs))


def test_fine_tuned_head_classifies_and_embeds_in_one_pass(monkeypatch, keras_files):
  model = _load(keras_files['fine_tuned'])
  info = model.info
  assert (info.format, info.input_size, info.input_size_fixed, info.input_range) == ('keras', (160, 160), False,
                                                                                    (0.0, 1.0))
  assert (info.num_classes, info.embedding_dim) == (3, 512)
  assert (info.classes_output, info.embedding_output) == ('classes', 'features')  # the features the head reads
  paths = [datagen.photo_named(name) for name in keras_models.FINE_TUNED_CLASSES]
  images = datagen.photo_batch((160, 160), paths)
  counter = count_forward(monkeypatch, model)
  out = model.predict(images)
  assert counter.calls == 1
  assert out.probabilities.argmax(axis=1).tolist() == [0, 1, 2]
  features = models.load(models.ModelSpec(str(datagen.SAVED_MODEL_FLOAT), models.EMBED, image_size=160))
  expected = features.predict(images).embedding
  cosine = np.sum(out.embedding * expected, axis=1) / np.linalg.norm(out.embedding, axis=1) / np.linalg.norm(
      expected, axis=1)
  assert np.all(cosine > 0.999)


def test_layers_by_name_and_a_1000_class_model(keras_files):
  images = datagen.photo_batch((160, 160))
  model = _load(keras_files['imagenet'], embedding_output='features')
  out = model.predict(images)
  assert (model.info.num_classes, model.info.classes_output) == (1000, 'predictions')
  golden = datagen.golden()
  expected = [golden[p.name]['pil_bilinear'][0]['index'] - 1 for p in datagen.photo_paths()]  # no background
  for name in ('bird', 'cat', 'hot_dog', 'missvickie_potato_chips'):
    i = [p.stem for p in datagen.photo_paths()].index(name)
    assert out.probabilities[i].argmax() == expected[i], name
  with pytest.raises(models.ModelError, match="no output or layer named 'pool' \\(--embedding_output\\)"):
    _load(keras_files['imagenet'], embedding_output='pool')


@pytest.mark.full
def test_fine_tuned_model_runs_through_the_pipeline(tmp_path, run_job, keras_files):
  labels = tmp_path / 'labels.txt'
  labels.write_text('\n'.join(keras_models.FINE_TUNED_CLASSES) + '\n')
  result = run_job(tmp_path / 'out', [
      '--input', f'{datagen.PHOTOS}/*', '--model', str(keras_files['fine_tuned']), '--image_size', '160',
      '--labels_file', str(labels), '--top_k', '2'
  ])
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  assert len(rows) == 6 and result.errors.num_rows == 0
  for name in keras_models.FINE_TUNED_CLASSES:
    assert rows[name]['top_labels'][0] == name
    assert len(rows[name]['top_classes']) == 2 and len(rows[name]['embedding']) == 512
