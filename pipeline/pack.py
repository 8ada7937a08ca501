"""Packs image files into TFRecord, WebDataset tar or Parquet shards (`python -m pipeline.pack`).

The image bytes are copied unchanged and each image keeps the id the job gives
the file itself (its path under the glob's base, without extension), so a
packed data set yields the same prediction rows as the files it came from.
TFRecord shards hold tf.train.Example records with image/encoded, image/id,
image/filename and image/format; tar shards hold ID.EXT members as img2dataset
writes them; Parquet shards are tables as Hugging Face datasets writes them, an
`id` column and an `image` struct {bytes, path}, in row groups of 100 rows.
Shards are named PREFIX-SSSSS-of-NNNNN.tfrecord (or .tar, .parquet), with .gz
added when compressed, on any Beam filesystem.
"""
import argparse
import dataclasses
import json
import logging
import posixpath
import sys
from typing import List, NamedTuple, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import command_line, options
from transforms import gcs_auth
from transforms.read import match
from transforms.read.formats import detect, tf_example, tfrecord, webdataset

_FORMAT_NAMES = {'jpg': 'jpeg', 'tif': 'tiff'}
DEFAULT_IMAGES_PER_SHARD = 1000
COMPRESSIONS = ('none', 'gzip')
FORMATS = (detect.TFRECORD, detect.TAR, detect.PARQUET)
PARQUET_ROWS_PER_GROUP = 100  # as `datasets` writes image tables
# The table Hugging Face datasets writes for an Image feature, with the features it records in the schema.
IMAGE_STRUCT = pa.struct([('bytes', pa.binary()), ('path', pa.string())])
HF_FEATURES = {'info': {'features': {'id': {'dtype': 'string', '_type': 'Value'}, 'image': {'_type': 'Image'}}}}
TABLE_SCHEMA = pa.schema([('id', pa.string()), ('image', IMAGE_STRUCT)],
                         metadata={'huggingface': json.dumps(HF_FEATURES)})
PROG = 'python -m pipeline.pack'


class PackError(ValueError):
  """Inputs that cannot be packed as asked."""


class Packed(NamedTuple):
  shards: List[str]
  images: int


def collect(patterns: Sequence[str]) -> List[match.FileRef]:
  """The images to pack, sorted by id; ids must be unique (and, for tar keys, free of dots)."""
  files = {}
  for pattern in patterns:
    found = list(match.expand(pattern, detect.IMAGES))  # a folder: every image file under it
    if not found:
      raise PackError(f'--input matches no image files: {pattern}')
    for f in found:
      if f.id in files:
        raise PackError(f'two inputs have the id {f.id!r}: {files[f.id].path} and {f.path}')
      files[f.id] = f
  return [files[i] for i in sorted(files)]


def _extension(path: str) -> str:
  return posixpath.splitext(path)[1].lstrip('.') or 'img'


def _shard_paths(output: str, count: int, suffix: str) -> List[str]:
  return [f'{output}-{i:05d}-of-{count:05d}{suffix}' for i in range(count)]


def _read(path: str) -> bytes:
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    return f.read()


def _write_tfrecord(path: str, files: Sequence[match.FileRef], gzip: bool) -> None:
  compression = CompressionTypes.GZIP if gzip else CompressionTypes.UNCOMPRESSED
  with FileSystems.create(path, compression_type=compression) as out:
    for f in files:
      ext = _extension(f.path).lower()
      image_format = _FORMAT_NAMES.get(ext, ext)
      example = tf_example.make_example(_read(f.path), f.id, posixpath.basename(f.path), image_format)
      out.write(tfrecord.encode_record(example))


def _write_tar(path: str, files: Sequence[match.FileRef], gzip: bool) -> None:
  with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
    writer = webdataset.ShardWriter(out, gzip)
    for f in files:
      writer.add(f.id, {_extension(f.path): _read(f.path)})
    writer.close()


def _write_parquet(path: str, files: Sequence[match.FileRef], _gzip: bool) -> None:
  with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as out:
    with pq.ParquetWriter(out, TABLE_SCHEMA) as writer:
      for at in range(0, len(files), PARQUET_ROWS_PER_GROUP):
        group = files[at:at + PARQUET_ROWS_PER_GROUP]
        images = [{'bytes': _read(f.path), 'path': posixpath.basename(f.path)} for f in group]
        writer.write_table(pa.table({'id': [f.id for f in group], 'image': pa.array(images, IMAGE_STRUCT)},
                                    schema=TABLE_SCHEMA))


_WRITERS = {detect.TFRECORD: (_write_tfrecord, '.tfrecord'), detect.TAR: (_write_tar, '.tar'),
            detect.PARQUET: (_write_parquet, '.parquet')}


def pack(patterns: Sequence[str], output: str, fmt: str, images_per_shard: int = DEFAULT_IMAGES_PER_SHARD,
         gzip: bool = False) -> Packed:
  """Writes the shards; returns their paths and the number of images packed."""
  files = collect(patterns)
  if fmt == detect.TAR:
    dotted = [f.id for f in files if '.' in posixpath.basename(f.id)]
    if dotted:
      raise PackError(f'WebDataset keys cannot contain dots (the first dot starts the extension): {dotted[:5]}')
  count = max(1, -(-len(files) // images_per_shard))
  write, suffix = _WRITERS[fmt]
  paths = _shard_paths(output, count, suffix + ('.gz' if gzip else ''))
  for i, path in enumerate(paths):
    write(path, files[i * images_per_shard:(i + 1) * images_per_shard], gzip)
    logging.info('wrote %s', path)
  return Packed(paths, len(files))


@dataclasses.dataclass(frozen=True)
class PackConfig:
  inputs: Tuple[str, ...]
  output: str
  format: str
  images_per_shard: int
  gzip: bool
  pipeline_options: PipelineOptions  # filesystem options such as --no_auth


def parse_pack(argv: Optional[Sequence[str]] = None) -> PackConfig:
  """Options of the packer; Beam's options (filesystem ones such as --no_auth) pass through, and an option
  that neither the packer nor Beam knows is refused. Raises options.OptionsError."""
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(prog=PROG, description='Pack image files into TFRecord, '
                                   'WebDataset tar or Parquet shards, keeping the ids the job gives the files.',
                                   formatter_class=command_line.DefaultsHelpFormatter)
  parser.add_argument('--input', required=True, help='A folder (every image file under it), globs or .txt lists '
                      'of URIs, separated by commas; local or gs://.')
  parser.add_argument('--output', required=True, help='Shard path prefix: PREFIX-SSSSS-of-NNNNN.tfrecord, .tar or '
                      '.parquet')
  parser.add_argument('--format', default=detect.TFRECORD, help=', '.join(FORMATS))
  parser.add_argument('--images_per_shard', type=int, default=DEFAULT_IMAGES_PER_SHARD, help='Images in each shard.')
  parser.add_argument('--compression', default=COMPRESSIONS[0], help=' or '.join(COMPRESSIONS))
  args, rest = parser.parse_known_args(argv)
  own = [s for action in parser._actions for s in action.option_strings]  # pylint: disable=protected-access
  command_line.check_known(rest, PROG, own)  # a typo such as --images-per-shard would otherwise go unnoticed
  if args.format not in FORMATS:
    raise options.OptionsError(f'--format must be one of {", ".join(FORMATS)}, not {args.format!r}')
  if args.format == detect.PARQUET and args.compression != COMPRESSIONS[0]:
    raise options.OptionsError('--compression applies to TFRecord and tar shards (Parquet compresses its pages)')
  if args.compression not in COMPRESSIONS:
    raise options.OptionsError(f'--compression must be {" or ".join(COMPRESSIONS)}, not {args.compression!r}')
  if args.images_per_shard < 1:
    raise options.OptionsError(f'--images_per_shard must be positive, not {args.images_per_shard}')
  return PackConfig(inputs=tuple(options.split_list(args.input)), output=args.output, format=args.format,
                    images_per_shard=args.images_per_shard, gzip=args.compression == 'gzip',
                    pipeline_options=PipelineOptions(rest))


def main(argv: Optional[Sequence[str]] = None) -> int:
  logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
  try:
    config = parse_pack(argv)
    gcs_auth.apply(config.pipeline_options)
    packed = pack(config.inputs, config.output, config.format, config.images_per_shard, config.gzip)
  except (options.OptionsError, PackError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(packed._asdict(), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
