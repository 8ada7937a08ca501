"""Class names for a classifier's outputs, from a text file with one name per line."""
from typing import List, Optional

from apache_beam.io.filesystems import FileSystems

from transforms.infer.models import ModelError

BACKGROUND = 'background'
# TF-slim's ImageNet classifiers have 1001 classes, class 0 being 'background'; Keras' and most others have 1000.
WITHOUT_BACKGROUND, WITH_BACKGROUND = 1000, 1001


def read_labels(path: str) -> List[str]:
  """Reads local or gs:// label files; a trailing blank line is not a class."""
  try:
    with FileSystems.open(path, compression_type='uncompressed') as f:
      text = f.read().decode('utf-8')
  except Exception as e:  # pylint: disable=broad-except
    raise ModelError(f'cannot read labels file {path!r}: {e}') from e
  lines = text.splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  return [line.strip() for line in lines]


def align_labels(labels: List[str], num_classes: Optional[int], path: str) -> List[str]:
  """The names of the model's classes, index for index; fails before any data is read when they cannot be.

  A 1001-line ImageNet file (line 0 'background') works with 1000-class
  models, its first line dropped, and a 1000-line file with 1001-class models,
  class 0 named 'background'. Any other mismatch is an error.
  """
  if num_classes is None or len(labels) == num_classes:
    return labels
  if (len(labels), num_classes) == (WITH_BACKGROUND, WITHOUT_BACKGROUND):
    return labels[1:]
  if (len(labels), num_classes) == (WITHOUT_BACKGROUND, WITH_BACKGROUND):
    return [BACKGROUND] + labels
  raise ModelError(f'labels file {path!r} has {len(labels)} names, but the model has {num_classes} classes')


def load_labels(path: str, num_classes: Optional[int]) -> List[str]:
  return align_labels(read_labels(path), num_classes, path)
