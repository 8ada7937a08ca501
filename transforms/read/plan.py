"""The read plan, made in the launcher before any work: each input's format, the options checked against it,
the passthrough columns typed.

The format is detected from the input's first file (by extension, else by
content); undeclared passthrough types from its first records; a Parquet
table's columns from its first file's schema.
"""
import contextlib
import dataclasses
import logging
from typing import NamedTuple, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems

from transforms.read import arrow_tables, match, parquet_tables, tar_shards, tfrecord_shards
from transforms.read.formats import example_keys, parquet_table, passthrough
from transforms.read.formats.detect import (AUTO, IMAGES, PARQUET, TABLES, TAR, TFRECORD, format_by_content,
                                           format_by_name)
from transforms.read.settings import ReadSettings

SAMPLE_RECORDS = 100  # records read in the launcher: to find the image feature, to type passthrough columns


class InputError(ValueError):
  """An input the job cannot read as asked; the message says which and what to do."""


class InputPlan(NamedTuple):
  inputs: Tuple[Tuple[str, str], ...]  # (pattern, format)
  settings: ReadSettings


@contextlib.contextmanager
def _peeking(what: str):
  """Any failure while the launcher peeks at an input becomes an InputError saying what it was doing."""
  try:
    yield
  except InputError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'{what}: {type(e).__name__}: {e}') from e


def _head(path: str, n: int = 64 << 10) -> bytes:
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return f.read(n)


def detect_format(pattern: str, path: str) -> str:
  try:
    fmt = format_by_name(path) or format_by_content(_head(path))
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read {path} (from --input {pattern}): {e}') from e
  if fmt is None:
    raise InputError(f'cannot tell the format of {path} (from --input {pattern}): not an image, TFRecord or tar '
                     f'file by name or content; pass --input_format')
  return fmt


def _check_compression(path: str, fmt: str, compression: str) -> None:
  unnamed_gzip = not path.lower().endswith('.gz') and _head(path, 2) == b'\x1f\x8b'
  if fmt == TFRECORD and compression == AUTO and unnamed_gzip:
    raise InputError(f'{path} is GZIP-compressed but has no .gz extension: pass --compression gzip')


def plan_inputs(patterns: Sequence[str], input_format: str = AUTO, settings: ReadSettings = ReadSettings(),
                passthrough_keys: Sequence[Tuple[str, Optional[str]]] = (), reserved: Sequence[str] = ()) -> InputPlan:
  """Formats per input and the passthrough columns' types; raises InputError before any work."""
  planned = []
  firsts = {}
  for pattern in patterns:
    with _peeking(f'cannot list --input {pattern}'):
      first = match.first_file(pattern, None if input_format == AUTO else input_format)
    if first is None and match.is_folder(pattern):
      raise InputError(f'--input {pattern}: no image, TFRecord or tar files under this folder (by extension); '
                       'name the files with a glob instead')
    if first is None:
      raise InputError(f'--input matches no files: {pattern}')
    fmt = input_format if input_format != AUTO else detect_format(pattern, first)
    with _peeking(f'cannot read {first} (from --input {pattern})'):
      _check_compression(first, fmt, settings.compression)
    planned.append((pattern, fmt))
    firsts.setdefault(fmt, first)
  used = set(firsts)
  if used & set(TABLES):
    return _plan_tables(tuple(planned), firsts, settings, passthrough_keys, reserved)
  if settings.image_column or settings.id_column or settings.allow_http:
    raise InputError('--image_column, --id_column and --allow_http apply to tables (Parquet, Arrow) only')
  if settings.id_key is not None and used != {TFRECORD}:
    raise InputError('--id_key applies to TFRecord inputs only (image files and tar samples have their own ids)')
  if settings.image_key is not None and IMAGES in used:
    raise InputError('--image_key applies to TFRecord and tar inputs, not to image files')
  if passthrough_keys and IMAGES in used:
    raise InputError('--passthrough_keys applies to TFRecord and tar inputs, not to image files')
  samples = []
  if TFRECORD in firsts:  # always: the image key must be there (example_keys.py)
    with _peeking(f'cannot read {firsts[TFRECORD]} to find its image feature'):
      records = tfrecord_shards.sample(firsts[TFRECORD], settings, SAMPLE_RECORDS)
    try:
      image_key, id_key, said = example_keys.find_keys(records, settings.image_key, settings.id_key,
                                                       firsts[TFRECORD])
    except example_keys.MissingKey as e:
      raise InputError(str(e)) from e
    for line in said:
      logging.info('inputs: %s (first records of %s)', line, firsts[TFRECORD])
    if image_key != settings.image_key and TAR in used:
      raise InputError(f'{firsts[TFRECORD]}: {said[0]}, which tar inputs do not have: run them as jobs of their own')
    settings = dataclasses.replace(settings, image_key=image_key,  # a found id: TFRecord inputs only, as --id_key
                                   id_key=id_key if used == {TFRECORD} else settings.id_key)
    samples += records
  if any(t is None for _, t in passthrough_keys):
    if TAR in firsts:
      with _peeking(f'cannot read {firsts[TAR]} to type --passthrough_keys'):
        samples += tar_shards.sample(firsts[TAR], SAMPLE_RECORDS, settings.max_input_bytes)
  try:
    columns = passthrough.resolve(passthrough_keys, samples, ' and '.join(sorted(firsts.values())))
  except passthrough.PassthroughError as e:
    raise InputError(str(e)) from e
  return InputPlan(tuple(planned), dataclasses.replace(settings, columns=columns))


def _plan_tables(planned, firsts, settings: ReadSettings, passthrough_keys, reserved: Sequence[str]) -> InputPlan:
  """A job of Parquet or Arrow tables: their columns, from the first file's schema."""
  if len(firsts) > 1:
    raise InputError(f'inputs of several formats ({", ".join(sorted(firsts))}) with tables among them do not share '
                     'their columns: run them as jobs of their own')
  (fmt, first), = firsts.items()
  if settings.image_key or settings.id_key:
    raise InputError('--image_key and --id_key apply to TFRecord and tar inputs; a table\'s are --image_column '
                     'and --id_column')
  typed = [name for name, declared in passthrough_keys if declared is not None]
  if typed:
    raise InputError(f'--passthrough_keys {", ".join(typed)}: a table\'s columns keep their own types; name them '
                     'without one')
  with _peeking(f'cannot read the schema of {first}'):
    schema = (parquet_tables if fmt == PARQUET else arrow_tables).schema(first, settings.anonymous)
  try:
    table = parquet_table.resolve(schema, settings.image_column, settings.id_column,
                                  [name for name, _ in passthrough_keys] or None, reserved, first)
  except parquet_table.TableError as e:
    raise InputError(str(e)) from e
  logging.info('inputs: %s: images from column %s (%s), ids from %s, passing through %s', first, table.image,
               table.kind, table.id or 'the image path or the row', ', '.join(table.passthrough) or 'nothing')
  columns = tuple(passthrough.Column(name, str(dtype), dtype)
                  for name, dtype in parquet_table.passthrough_types(schema, table))
  return InputPlan(planned, dataclasses.replace(settings, table=table, columns=columns))
