"""Filesystem helpers that behave alike on local disk and object stores (gs://), through Beam's FileSystems.

Object stores have no folders and no atomic multi-file moves: a "folder" is
every object under a prefix, and a file appears whole only if it is written
beside and renamed into place.
"""
import errno
import json
import os
import uuid
from typing import List, Optional, Sequence

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems


def join(*parts: str) -> str:
  return FileSystems.join(*parts)


def list_files(pattern: str) -> List[str]:
  return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def delete_tree(path: str) -> None:
  """Removes a folder and everything under it, if there is one (on GCS, every object under the prefix)."""
  path = path.rstrip('/')
  if FileSystems.exists(path):  # a local folder
    FileSystems.delete([path])
  if list_files(join(path, '**')):  # objects under a GCS prefix
    FileSystems.delete([path + '/'])


def disk_full(error: BaseException) -> bool:
  """Whether a failure (possibly a worker's, re-raised by the runner as text) was a full disk (ENOSPC)."""
  while error is not None:
    if getattr(error, 'errno', None) == errno.ENOSPC or 'No space left on device' in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def basename(path: str) -> str:
  return path.rstrip('/').rsplit('/', 1)[-1]


def move(source: str, destination: str) -> None:
  """One file to another path (on GCS a copy, then a delete: a crash between them leaves both, each whole)."""
  parent = destination.rsplit('/', 1)[0]
  if '://' not in destination and not FileSystems.exists(parent):
    FileSystems.mkdirs(parent)  # local renames need the folder
  FileSystems.rename([source], [destination])


def remove_empty_folder(path: str) -> None:
  """Local disk only (object stores have no empty folders): removes a folder left empty, keeps one that is not."""
  if '://' not in path:
    try:
      os.rmdir(path)
    except OSError:
      pass


def delete_files(paths: Sequence[str]) -> None:
  existing = [p for p in paths if FileSystems.exists(p)]
  if existing:
    FileSystems.delete(existing)


def write_text(path: str, text: str) -> None:
  """Whole or not at all: written beside, then renamed (readers never see a partial file)."""
  temp = f'{path}.{uuid.uuid4().hex[:8]}.tmp'
  with FileSystems.create(temp) as f:
    f.write(text.encode('utf-8'))
  FileSystems.rename([temp], [path])


def write_json(path: str, value: dict) -> None:
  write_text(path, json.dumps(value, indent=2, sort_keys=True))


def read_json(path: str) -> Optional[dict]:
  if not FileSystems.exists(path):
    return None
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return json.loads(f.read().decode('utf-8'))


def count_rows(paths: Sequence[str]) -> int:
  """Rows in Parquet files, from their footers."""
  total = 0
  for path in paths:
    with FileSystems.open(path, compression_type='uncompressed') as f:
      total += pq.ParquetFile(f).metadata.num_rows
  return total
