"""The launcher's model check is read back only for the same model bytes and options; failures are never kept."""
import dataclasses
import shutil

import pytest

from tests import datagen
from transforms.infer import info_cache, model_files, models


@pytest.fixture(autouse=True, name='cache_dir')
def cache_dir_fixture(tmp_path, monkeypatch):
  monkeypatch.setenv(model_files.CACHE_ENV, str(tmp_path / 'cache'))
  return tmp_path / 'cache'


def _counting_loads(monkeypatch) -> list:
  loads = []
  real = model_files.load

  def load(spec):
    loads.append(spec)
    return real(spec)

  monkeypatch.setattr(model_files, 'load', load)
  return loads


def test_a_passed_check_is_read_back_without_loading(tmp_path, monkeypatch, cache_dir):
  loads = _counting_loads(monkeypatch)
  spec = models.ModelSpec(str(datagen.TFLITE_QUANT), models.CLASSIFY, num_threads=1)
  first = info_cache.model_info(spec)
  assert first == models.load(spec).info
  assert info_cache.model_info(spec) == first
  moved = tmp_path / 'elsewhere.tflite'  # the same bytes under another name: the same check
  shutil.copy(datagen.TFLITE_QUANT, moved)
  assert info_cache.model_info(dataclasses.replace(spec, location=str(moved))) == first
  assert len(loads) == 1
  assert len(list((cache_dir / 'info').glob('*.json'))) == 1


def test_other_options_or_bytes_are_checked_again(tmp_path, monkeypatch):
  loads = _counting_loads(monkeypatch)
  model = tmp_path / 'model.tflite'
  shutil.copy(datagen.TFLITE_QUANT, model)
  spec = models.ModelSpec(str(model), models.CLASSIFY, num_threads=1)
  info_cache.model_info(spec)
  info_cache.model_info(dataclasses.replace(spec, task=models.BOTH))
  info_cache.model_info(dataclasses.replace(spec, num_threads=2))
  shutil.copy(datagen.TFLITE_QUANT.parent / 'mobilenet_v1_0.25_128_quant.tflite', model)  # new bytes, same path
  assert info_cache.model_info(spec).input_size == (128, 128)
  assert len(loads) == 4


def test_a_failed_check_fails_every_time(monkeypatch, cache_dir):
  loads = _counting_loads(monkeypatch)
  spec = models.ModelSpec(str(datagen.TFLITE_QUANT), models.CLASSIFY, image_size=224)  # the model takes 160
  for _ in range(2):
    with pytest.raises(models.ModelError, match='input size mismatch'):
      info_cache.model_info(spec)
  assert len(loads) == 2
  assert not list((cache_dir / 'info').glob('*.json'))


def test_a_path_that_is_no_model_fails_before_it_is_hashed(tmp_path):
  (tmp_path / 'notes.txt').write_text('not a model')
  with pytest.raises(models.ModelError, match='not a model'):
    info_cache.model_info(models.ModelSpec(str(tmp_path)))
  with pytest.raises(models.ModelError, match='model not found'):
    info_cache.model_info(models.ModelSpec(str(tmp_path / 'missing')))


def test_an_unreadable_entry_is_checked_again(monkeypatch, cache_dir):
  spec = models.ModelSpec(str(datagen.TFLITE_QUANT), models.CLASSIFY, num_threads=1)
  info = info_cache.model_info(spec)
  entry, = (cache_dir / 'info').glob('*.json')
  entry.write_text('{"format": ')
  loads = _counting_loads(monkeypatch)
  assert info_cache.model_info(spec) == info
  assert len(loads) == 1
