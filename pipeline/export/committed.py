"""A finished output's prediction rows, streamed a batch at a time from the parts its manifest lists.

Only a committed output is read (summary.json present), and only through manifest.json, as docs/output.md
tells readers: whatever else a folder holds (a late attempt's orphan, a rerun's leftovers), each row once.
"""
from typing import Iterator, List, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.output import files
from transforms.output.layout import MANIFEST_FILE, PREDICTIONS_DIR, SUMMARY_FILE

BATCH_ROWS = 8192  # rows read at a time: about 16 MB of float32 vectors of 512 values


class ExportError(ValueError):
  """The output cannot be exported as asked; the message says why."""


def _open(path: str):
  return FileSystems.open(path, 'application/octet-stream')


def row_count(path: str) -> int:
  """From the part's footer alone; the file is not held open (a shard may span thousands of parts)."""
  with _open(path) as handle:
    return pq.ParquetFile(handle).metadata.num_rows


def batches(path: str, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
  with _open(path) as handle:
    yield from pq.ParquetFile(handle, pre_buffer=False).iter_batches(batch_size=batch_rows)  # else whole row groups


def part_paths(output: str) -> List[str]:
  """The prediction parts the commit kept; raises ExportError for an output that is not finished."""
  output = output.rstrip('/')
  if not FileSystems.exists(files.join(output, SUMMARY_FILE)):
    raise ExportError(f'{output} is not a finished output (no {SUMMARY_FILE}): export reads only what a job '
                      'committed; finish it with --resume first')
  manifest = files.read_json(files.join(output, MANIFEST_FILE))
  if manifest is None:
    raise ExportError(f'{output} has no {MANIFEST_FILE}: it was written by an older version; export lists the '
                      'parts the commit kept from it')
  return [files.join(output, PREDICTIONS_DIR, name) for name in manifest[PREDICTIONS_DIR]]


def schema(paths: Sequence[str], column: str) -> pa.Schema:
  """The predictions' schema, checked to hold `column` as vectors."""
  found = None
  if paths:
    with _open(paths[0]) as handle:
      found = pq.read_schema(handle)
  if found is None or column not in found.names:
    raise ExportError(f'no {column} column in the output (columns: {", ".join(found.names) if found else "none"});'
                      ' run the job with --task embed or both (embedding_pca: --analyze_embeddings)')
  if not pa.types.is_fixed_size_list(found.field(column).type):
    raise ExportError(f'{column} is {found.field(column).type}, not fixed-size vectors: the output was written '
                      'before schema version 2 (docs/output.md); run the job again with --overwrite')
  return found


def matrix(vectors: pa.Array):
  """A vector column's values as an [N, D] array of their own type (float32 or float16), no copy if it can."""
  values = pc.list_flatten(vectors).to_numpy(zero_copy_only=False)
  return values.reshape(len(vectors), -1)
