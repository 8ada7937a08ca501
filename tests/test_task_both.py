"""--task both through the pipeline: the rows of classify and embed runs, from one forward pass per batch."""
import numpy as np
import pytest

from tests import datagen
from tests import counting
from tests.counting import Counter
from transforms.infer import models
from transforms.infer.models import keras as keras_backend
from transforms.infer.models import saved_model, tf1_hub, tflite

IN_PROCESS = ['--direct_running_mode=in_memory', '--direct_num_workers=1']  # so the counters see the calls


@pytest.mark.parametrize('backend, model', [
    (tf1_hub.TF1HubModel, datagen.HUB_CLASSIFIER),
    (saved_model.SavedModel, str(datagen.SAVED_MODEL_FLOAT)),
    (keras_backend.KerasModel, 'fine_tuned'),
    (tflite.TFLiteModel, str(datagen.TFLITE_QUANT)),
])
@pytest.mark.full
def test_both_equals_classify_plus_embed_with_one_forward_pass(tmp_path, run_job, monkeypatch, keras_files, backend,
                                                                 model):
  model = str(keras_files[model]) if model in keras_files else model
  forward = Counter()
  original_init = backend.__init__

  def init_and_count(self, *args, **kwargs):  # every model the job loads counts its forward passes
    original_init(self, *args, **kwargs)
    counting.count(forward, monkeypatch, self)

  monkeypatch.setattr(backend, '__init__', init_and_count)
  original_predict = backend.predict
  batches = []  # (images, forward calls) for each predict call

  def counted_predict(self, batch):
    before = forward.calls
    outputs = original_predict(self, batch)
    batches.append((len(batch), forward.calls - before))
    return outputs

  monkeypatch.setattr(backend, 'predict', counted_predict)
  base = ['--input', f'{datagen.PHOTOS}/*', '--model', model, '--image_size', '160', '--min_batch_size', '3',
          '--max_batch_size', '3']
  rows = {}
  for task in models.TASKS:
    batches.clear()
    result = run_job(tmp_path / task, base + ['--task', task], IN_PROCESS)
    rows[task] = {r['id']: r for r in result.predictions.to_pylist()}
    assert len(rows[task]) == 6 and sum(n for n, _ in batches) == 6 and len(batches) >= 2
    per_image = backend is tflite.TFLiteModel  # batch fixed at 1 in the file: one invoke per image
    assert all(calls == (n if per_image else 1) for n, calls in batches), batches
  for image_id, both in rows[models.BOTH].items():
    assert both['top_classes'] == rows[models.CLASSIFY][image_id]['top_classes']
    assert np.allclose(both['top_scores'], rows[models.CLASSIFY][image_id]['top_scores'], atol=1e-6)
    assert np.allclose(both['embedding'], rows[models.EMBED][image_id]['embedding'], atol=1e-5)
    assert 'embedding' not in rows[models.CLASSIFY][image_id] and 'top_classes' not in rows[models.EMBED][image_id]
