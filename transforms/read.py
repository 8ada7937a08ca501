"""Read stage: inputs -> EncodedImage(ref, bytes), plus read errors, whatever the input format.

Each input (a glob, or a .txt list of URIs) is read by the reader of its
format: image files (read_files), TFRecord shards of tf.Example
(read_tfrecord) or WebDataset tar shards (read_tar). plan() runs in the
launcher, before any work: it detects each input's format from its first
file (by extension, else by content), checks the format-specific options and
fixes the types of passthrough columns; ReadImages then builds the readers.
"""
import dataclasses
import gzip
import io
import struct
from typing import NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import inputs, passthrough, read_files, read_tar, read_tfrecord, records, tfrecord

IMAGES, TFRECORD, TAR = 'images', 'tfrecord', 'tar'
FORMATS = (IMAGES, TFRECORD, TAR)
AUTO = 'auto'
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff')
_IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM', b'II*\x00', b'MM\x00*')
SAMPLE_RECORDS = 100  # records read in the launcher to type undeclared passthrough columns


class InputError(ValueError):
  """An input the job cannot read as asked; the message says which and what to do."""


class InputPlan(NamedTuple):
  inputs: Tuple[Tuple[str, str], ...]  # (pattern, format)
  settings: inputs.ReadSettings


def format_by_name(path: str) -> Optional[str]:
  name = path.lower()
  if name.endswith(read_tar.EXTENSIONS):
    return TAR
  name = name[:-3] if name.endswith('.gz') else name
  if name.endswith(read_tfrecord.EXTENSIONS):
    return TFRECORD
  if name.endswith(IMAGE_EXTENSIONS):
    return IMAGES
  return None


def format_by_content(head: bytes) -> Optional[str]:
  """The format of a file from its first bytes (at least 512 of them when the file is that long)."""
  if head[:2] == b'\x1f\x8b':
    try:
      head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(1024)
    except (OSError, EOFError):
      return None
  if head[257:262] == b'ustar':
    return TAR
  if head.startswith(_IMAGE_MAGIC) or (head[:4] == b'RIFF' and head[8:12] == b'WEBP'):
    return IMAGES
  if len(head) >= tfrecord.HEADER_BYTES:
    length, crc = struct.unpack('<QI', head[:tfrecord.HEADER_BYTES])
    if crc == tfrecord.masked_crc32c(head[:8]) and length < 1 << 40:
      return TFRECORD
  return None


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


def plan(patterns: Sequence[str], input_format: str = AUTO, settings: inputs.ReadSettings = inputs.ReadSettings(),
         passthrough_keys: Sequence[Tuple[str, Optional[str]]] = ()) -> InputPlan:
  """Formats per input and the passthrough columns' types; raises InputError before any work."""
  planned = []
  firsts = {}
  for pattern in patterns:
    first = inputs.first_file(pattern)
    if first is None:
      raise InputError(f'--input matches no files: {pattern}')
    fmt = input_format if input_format != AUTO else detect_format(pattern, first)
    _check_compression(first, fmt, settings.compression)
    planned.append((pattern, fmt))
    firsts.setdefault(fmt, first)
  used = set(firsts)
  if settings.id_key is not None and used != {TFRECORD}:
    raise InputError('--id_key applies to TFRecord inputs only (image files and tar samples have their own ids)')
  if settings.image_key is not None and IMAGES in used:
    raise InputError('--image_key applies to TFRecord and tar inputs, not to image files')
  if passthrough_keys and IMAGES in used:
    raise InputError('--passthrough_keys applies to TFRecord and tar inputs, not to image files')
  samples = []
  if any(t is None for _, t in passthrough_keys):
    if TFRECORD in firsts:
      samples += read_tfrecord.sample(firsts[TFRECORD], settings, SAMPLE_RECORDS)
    if TAR in firsts:
      samples += read_tar.sample(firsts[TAR], SAMPLE_RECORDS)
  try:
    columns = passthrough.resolve(passthrough_keys, samples, ' and '.join(sorted(firsts.values())))
  except passthrough.PassthroughError as e:
    raise InputError(str(e)) from e
  return InputPlan(tuple(planned), dataclasses.replace(settings, columns=columns))


class ReadImages(beam.PTransform):
  """Every input by the reader of its format; returns {'images': ..., 'errors': ...}."""

  def __init__(self, input_plan: InputPlan):
    super().__init__()
    self._plan = input_plan

  def _reader(self, fmt: str, patterns):
    if fmt == TFRECORD:
      return read_tfrecord.ReadTFRecords(patterns, self._plan.settings)
    if fmt == TAR:
      return read_tar.ReadTarShards(patterns, self._plan.settings)
    return read_files.ReadImageFiles(patterns)

  def expand(self, pbegin):
    images, errors = [], []
    for fmt in FORMATS:
      patterns = [pattern for pattern, f in self._plan.inputs if f == fmt]
      if patterns:
        read = pbegin | f'Read_{fmt}' >> self._reader(fmt, patterns)
        images.append(read['images'])
        errors.append(read[records.ERRORS_TAG])
    return {
        'images': tuple(images) | 'Images' >> beam.Flatten(),
        records.ERRORS_TAG: tuple(errors) | 'Errors' >> beam.Flatten(),
    }
