"""Remote models are copied to local disk once per process, through Beam's filesystems."""
import dataclasses
import filecmp
import os

import numpy as np
import pytest

from tests import datagen, gcs
from transforms.infer import model_files, models


@pytest.fixture(autouse=True, name='fresh_process')
def fresh_process_fixture(monkeypatch):
  monkeypatch.setattr(model_files, '_copies', {})  # as in a new worker process


def test_directory_copy_through_filesystems_is_made_once(tmp_path):
  source = str(datagen.SAVED_MODEL_FLOAT)
  local = model_files.local_copy(source, str(tmp_path / 'cache'))
  assert not filecmp.dircmp(source, local).diff_files
  assert sorted(os.listdir(local)) == sorted(os.listdir(source))
  assert sorted(os.listdir(os.path.join(local, 'variables'))) == sorted(os.listdir(source + '/variables'))
  stamp = os.stat(local).st_mtime_ns
  assert model_files.local_copy(source + '/', str(tmp_path / 'cache')) == local  # same process: cached
  model_files._copies.clear()  # pylint: disable=protected-access
  assert model_files.local_copy(source, str(tmp_path / 'cache')) == local  # another process: reuses the copy
  assert os.stat(local).st_mtime_ns == stamp
  assert [p for p in os.listdir(tmp_path / 'cache') if 'partial' in p] == []


def test_single_file_copy_keeps_its_name(tmp_path):
  local = model_files.local_copy(str(datagen.TFLITE_QUANT), str(tmp_path / 'cache'))
  assert os.path.basename(local) == datagen.TFLITE_QUANT.name
  assert filecmp.cmp(local, datagen.TFLITE_QUANT, shallow=False)


@pytest.mark.usefixtures('gcs_emulator')
def test_gs_models_load_from_the_emulator(tmp_path, monkeypatch):
  monkeypatch.setenv(model_files.CACHE_ENV, str(tmp_path / 'cache'))
  tflite = gcs.upload('models', datagen.TFLITE_QUANT, 'tflite/mobilenet.tflite')
  saved = gcs.upload('models', datagen.SAVED_MODEL_FLOAT, 'saved_model/mobilenet_float')
  images = datagen.photo_batch((160, 160))
  for location, local in ((tflite, datagen.TFLITE_QUANT), (saved, datagen.SAVED_MODEL_FLOAT)):
    spec = models.ModelSpec(location, models.BOTH, image_size=160, num_threads=1)
    remote = model_files.load(spec).predict(images)
    expected = models.load(dataclasses.replace(spec, location=str(local))).predict(images)
    assert np.array_equal(remote.probabilities, expected.probabilities)
    assert np.array_equal(remote.embedding, expected.embedding)
  with pytest.raises(models.ModelError, match="model not found: 'gs://models/nothing' matches no files"):
    model_files.load(models.ModelSpec('gs://models/nothing'))


@pytest.mark.usefixtures('gcs_emulator')
def test_pipeline_workers_copy_a_gs_model(tmp_path, monkeypatch, run_job):
  monkeypatch.setenv(model_files.CACHE_ENV, str(tmp_path / 'cache'))  # worker processes inherit it
  location = gcs.upload('models', datagen.TFLITE_QUANT, 'job/mobilenet.tflite')
  result = run_job(tmp_path / 'out', ['--input', f'{datagen.PHOTOS}/*', '--model', location, '--task', 'classify'])
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  golden = datagen.golden()
  assert len(rows) == 6 and result.errors.num_rows == 0
  for path in datagen.photo_paths():
    assert rows[path.stem]['top_classes'] == [e['index'] for e in golden[path.name]['pil_bilinear']]
    assert rows[path.stem]['model'] == location
  copies = [name for name in os.listdir(tmp_path / 'cache') if name != 'info']  # info/: the kept model checks
  assert len(copies) == 1  # one copy, shared by the launcher and the workers
