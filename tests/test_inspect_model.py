"""python -m pipeline.inspect_model: what a user checks before a big job."""
import subprocess
import sys

from pipeline import inspect_model, model_options
from tests import datagen


def test_tflite_model_with_image_and_labels(capsys):
  photo = datagen.photo_named('cat')
  assert inspect_model.main([str(datagen.TFLITE_QUANT), str(photo), '--labels_file', str(datagen.LABELS)]) == 0
  out = capsys.readouterr().out
  assert 'format:       tflite' in out and 'quantized (scale 0.0078125, zero point 128)' in out
  assert 'input:        RGB 160x160 (fixed)' in out
  assert 'value range:  pixels 0..255 -> [-1, 0.992188]' in out
  assert 'embedding:    512 values, from MobilenetV1/Logits/AvgPool_1a/AvgPool' in out
  assert 'classes:      1001, from MobilenetV1/Predictions/Reshape_1' in out
  golden = datagen.golden()[photo.name]['pil_bilinear']
  for rank, expected in enumerate(golden, 1):
    assert f'  {rank}. {expected["score"]:.4f}  class {expected["index"]}  {expected["label"]}' in out
  assert f'embedding of {photo}: 512 values' in out


def test_1000_line_labels_name_a_1001_class_model(tmp_path, capsys):
  labels = tmp_path / 'labels_1000.txt'
  labels.write_text('\n'.join(datagen.LABELS.read_text().splitlines()[1:]))
  photo = datagen.photo_named('bird')
  args = [datagen.HUB_CLASSIFIER, str(photo), '--labels_file', str(labels), '--top_k', '1']
  assert inspect_model.main(args) == 0
  expected = datagen.golden()[photo.name]['pil_bilinear'][0]
  assert f'class {expected["index"]}  {expected["label"]}' in capsys.readouterr().out


def test_any_size_model_and_feature_module_without_task(capsys):
  assert inspect_model.main([str(datagen.SAVED_MODEL_FLOAT)]) == 0
  out = capsys.readouterr().out
  assert 'any size; 224x224 used (--image_size, default 224)' in out
  assert 'serving_default:logits' in out and '__call__' in out
  assert inspect_model.main([str(datagen.HUB_DIRS[datagen.HUB_FEATURES])]) == 0  # cannot classify: shows embed
  out = capsys.readouterr().out
  assert 'embedding:    512 values, from image_feature_vector' in out and 'classes:' not in out


def test_command_line_reports_errors(tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'pipeline.inspect_model', str(tmp_path / 'missing')],
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2 and 'model not found' in proc.stderr


def test_parse_inspect_shares_the_job_model_options():
  config = inspect_model.parse_inspect([datagen.HUB_CLASSIFIER, 'cat.jpg'])
  assert config.any_task and config.model.task == 'both' and config.image == 'cat.jpg'
  assert (config.top_k, config.resize_method) == (model_options.DEFAULT_TOP_K, model_options.DEFAULT_RESIZE_METHOD)
  config = inspect_model.parse_inspect([datagen.HUB_CLASSIFIER, '--task', 'embed', '--top_k', '3',
                                        '--resize_method', 'area', '--input_range=-1,1'])
  assert not config.any_task and config.model.task == 'embed' and config.image is None
  assert (config.top_k, config.resize_method, config.model.input_range) == (3, 'area', (-1.0, 1.0))


def test_bad_resize_method_is_refused(capsys):
  assert inspect_model.main([datagen.HUB_CLASSIFIER, '--resize_method', 'magic']) == 2
  assert '--resize_method must be one of' in capsys.readouterr().err
