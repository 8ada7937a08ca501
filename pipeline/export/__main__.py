"""python -m pipeline.export OUT --to npy|lance DEST [--column embedding] [--rows_per_shard N] [--index KIND]
[--overwrite]: see pipeline/export/__init__.py and docs/output.md. Prints what it wrote, as JSON."""
import argparse
import json
import sys
from typing import Optional, Sequence

from apache_beam.io.filesystems import FileSystems

from pipeline.export import committed, lance, npy
from transforms.output import files
from transforms.output.schema import EMBEDDING_COLUMN

PROG = 'python -m pipeline.export'
FORMATS = ('npy', 'lance')


class _Parser(argparse.ArgumentParser):
  def error(self, message):
    raise committed.ExportError(message)


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
  parser = _Parser(prog=PROG, description=__doc__.split(':', 1)[0])
  parser.add_argument('output', help='a finished output of the job (summary.json present)')
  parser.add_argument('dest', help='npy: a folder (img_emb/, metadata/); lance: the dataset, e.g. DIR/images.lance')
  parser.add_argument('--to', required=True, choices=FORMATS, help='the layout written')
  parser.add_argument('--column', default=EMBEDDING_COLUMN, help='the vector column exported (or embedding_pca)')
  parser.add_argument('--rows_per_shard', type=int, default=npy.ROWS_PER_SHARD, help='npy: rows per shard, about')
  parser.add_argument('--index', default='none', choices=lance.INDEXES, help='lance: the vector index built')
  parser.add_argument('--overwrite', action='store_true', help='replace what DEST holds')
  args = parser.parse_args(argv)
  if args.rows_per_shard < 1:
    raise committed.ExportError(f'--rows_per_shard must be positive, not {args.rows_per_shard}')
  if args.index != 'none' and args.to != 'lance':
    raise committed.ExportError('--index builds a Lance index: it needs --to lance')
  return args


def _clear(dest: str, overwrite: bool) -> None:
  if FileSystems.exists(dest) or files.list_files(files.join(dest, '**')):  # a folder, or objects under a prefix
    if not overwrite:
      raise committed.ExportError(f'{dest} exists: pass --overwrite to replace it')
    files.delete_tree(dest)


def main(argv: Optional[Sequence[str]] = None) -> int:
  try:
    args = parse(argv)
    paths = committed.part_paths(args.output)
    committed.schema(paths, args.column)  # before anything is written or deleted
    dest = args.dest.rstrip('/')
    _clear(dest, args.overwrite)
    if args.to == 'npy':
      written = npy.export(paths, args.column, dest, args.rows_per_shard)
    else:
      written = lance.export(paths, args.column, dest, args.index)
  except committed.ExportError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(dict(written, column=args.column, dest=args.dest), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
