"""Labels files name the model's classes index for index, with the ImageNet background offset handled."""
import pytest

from tests import datagen
from transforms.infer import labels, models

IMAGENET = labels.read_labels(str(datagen.LABELS))


def test_labels_file_is_read_as_names():
  assert len(IMAGENET) == 1001 and IMAGENET[0] == 'background' and IMAGENET[286] == 'Egyptian cat'


def test_background_offset_both_ways():
  assert labels.align_labels(IMAGENET, 1001, 'f') == IMAGENET
  assert labels.align_labels(IMAGENET, 1000, 'f') == IMAGENET[1:]  # 1000-class model, 1001-line file
  assert labels.align_labels(IMAGENET[1:], 1001, 'f') == IMAGENET  # 1001-class model, 1000-line file
  assert labels.align_labels(IMAGENET, None, 'f') == IMAGENET  # an embedding model: nothing to align


@pytest.mark.parametrize('names, classes', [(10, 1001), (1002, 1000), (4, 3), (2, 3)])
def test_any_other_mismatch_is_an_error(names, classes):
  with pytest.raises(models.ModelError, match=f"labels file 'f' has {names} names, but the model has {classes} "
                     'classes'):
    labels.align_labels([f'c{i}' for i in range(names)], classes, 'f')


@pytest.mark.full
def test_1000_class_model_gets_the_right_names_through_the_pipeline(tmp_path, run_job, keras_files):
  result = run_job(tmp_path / 'out', [
      '--input', f'{datagen.PHOTOS}/*', '--model', str(keras_files['imagenet']), '--image_size', '160',
      '--task', 'classify', '--labels_file', str(datagen.LABELS)
  ])
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  golden = datagen.golden()
  for name in ('bird', 'cat', 'hot_dog', 'missvickie_potato_chips'):
    expected = golden[datagen.photo_named(name).name]['pil_bilinear'][0]
    assert rows[name]['top_labels'][0] == expected['label'], (name, rows[name]['top_labels'])
    assert rows[name]['top_classes'][0] == expected['index'] - 1  # the model's own index: no background class
