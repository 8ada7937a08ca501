"""Model problems fail the job before any data is read, with a message that says what is wrong."""
import pytest

from pipeline import run
from tests import datagen

CLASSIFIER = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
FEATURES = str(datagen.HUB_DIRS[datagen.HUB_FEATURES])
TFLITE = str(datagen.TFLITE_QUANT)
FLOAT = str(datagen.SAVED_MODEL_FLOAT)


@pytest.mark.parametrize('args, message', [
    (['--model', '/no/such/model.tflite'], "model not found: '/no/such/model.tflite'"),
    (['--model', str(datagen.LABELS)], 'not a model'),
    (['--model', FEATURES, '--task', 'classify'], "no signature for classification: looked for "
     "'image_classification' (--classes_output)"),
    (['--model', FLOAT, '--classes_output', 'scores'], 'no output for classification: looked for scores'),
    (['--model', TFLITE, '--embedding_output', 'pool'], "no tensor named 'pool' (--embedding_output)"),
    (['--model', '{keras}', '--embedding_output', 'pool'], "no output or layer named 'pool'"),
    (['--model', TFLITE, '--image_size', '224'], 'input size mismatch: --image_size 224 given, but the model '
     'takes only 160x160 images'),
    (['--model', CLASSIFIER, '--image_size', '128'], 'input size mismatch'),
    (['--model', TFLITE, '--input_range', '0,1'], '--input_range does not apply'),
    (['--model', FLOAT, '--input_range', '1'], '--input_range must be LOW,HIGH'),
    (['--model', '{keras}', '--labels_file', str(datagen.LABELS)], "has 1001 names, but the model has 3 classes"),
    (['--model', TFLITE, '--labels_file', '{labels_999}'], 'has 999 names, but the model has 1001 classes'),
])
def test_model_error_fails_before_reading(tmp_path, capsys, keras_files, args, message):
  labels = tmp_path / 'labels_999.txt'
  labels.write_text('\n'.join(f'class {i}' for i in range(999)))
  args = [a.replace('{keras}', str(keras_files['fine_tuned'])).replace('{labels_999}', str(labels)) for a in args]
  code = run.main(['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out')] + args)
  assert code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()  # nothing started
