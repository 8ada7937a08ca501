"""Workers start loading the model when they start; the handler takes that model only for its own spec."""
import json

import pytest
from apache_beam.options.pipeline_options import DebugOptions, SetupOptions

from pipeline import run
from tests import datagen
from transforms.infer import handler, models, preload

SPEC = models.ModelSpec(str(datagen.TFLITE_QUANT), models.CLASSIFY, num_threads=1)


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
  monkeypatch.setattr(preload, '_pending', None)


def test_the_spec_travels_in_an_experiment():
  spec = models.ModelSpec('gs://b/m,odel', models.BOTH, 160, 2, 'a:b', 'c', (-1.0, 1.0))
  value = preload.experiment(spec)
  assert ',' not in value  # Beam splits experiments at commas
  assert preload.spec_from(['other', value]) == spec
  assert preload.spec_from(['other']) is None


def test_the_handler_takes_the_preloaded_model_once():
  preload.start(SPEC)
  model = preload.take(SPEC)
  assert model is not None and model.info.num_classes == 1001
  assert preload.take(SPEC) is None  # taken: a second handler loads its own


def test_a_preload_of_another_spec_or_a_failed_one_is_not_used():
  preload.start(SPEC)
  assert preload.take(models.ModelSpec(str(datagen.TFLITE_QUANT), models.BOTH, num_threads=1)) is None
  bad = models.ModelSpec(str(datagen.TFLITE_QUANT), models.CLASSIFY, image_size=224)
  preload.start(bad)
  assert preload.take(bad) is None
  with pytest.raises(models.ModelError, match='input size mismatch'):  # the handler's own load raises it
    handler.ImageModelHandler(bad, 1, 1).load_model()


def test_a_worker_starts_the_preload_from_its_options(monkeypatch):
  options = {'beam:option:experiments:v1': ['beam_fn_api', preload.experiment(SPEC)]}
  monkeypatch.setenv('PIPELINE_OPTIONS', json.dumps(options))
  monkeypatch.delenv('CONTROL_API_SERVICE_DESCRIPTOR', raising=False)
  preload._start_in_worker()  # pylint: disable=protected-access
  assert preload.take(SPEC) is None  # not a worker process: nothing started
  monkeypatch.setenv('CONTROL_API_SERVICE_DESCRIPTOR', 'url: "localhost:1"')
  preload._start_in_worker()  # pylint: disable=protected-access
  assert handler.ImageModelHandler(SPEC, 1, 1).load_model() is not None
  assert preload._pending is None  # pylint: disable=protected-access  # the handler took it


def test_the_launcher_asks_workers_to_preload(tmp_path):
  p, config = run.prepare(['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model',
                           str(datagen.TFLITE_QUANT), '--task', 'classify', '--dry_run=true'])
  assert preload.__name__ in p.options.view_as(SetupOptions).beam_plugins
  assert preload.spec_from(p.options.view_as(DebugOptions).experiments) == config.model
