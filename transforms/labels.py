"""Class names for a classifier's outputs, from a text file with one name per line."""
from typing import List, Optional

from apache_beam.io.filesystems import FileSystems

from transforms.models import ModelError


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


def check_labels(labels: Optional[List[str]], num_classes: Optional[int], path: str) -> None:
  """Fails before any data is read when the file cannot name the model's classes."""
  if labels is None or num_classes is None:
    return
  if len(labels) != num_classes:
    raise ModelError(f'labels file {path!r} has {len(labels)} names, but the model has {num_classes} classes')
