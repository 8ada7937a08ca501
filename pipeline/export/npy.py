"""clip-retrieval's embedding layout, which autofaiss and faiss read: DEST/img_emb/img_emb_N.npy ([rows, D], the
column's own float type) and DEST/metadata/metadata_N.parquet (every other column), row N of one the row N of
the other. A shard is a run of whole parts of about rows_per_shard rows; the parts' footers give its row count
before any vector is read, so that each .npy header is written first and the vectors streamed after it."""
import io
from typing import Iterator, List, Tuple

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.export import committed
from transforms.output import files

EMBEDDINGS_DIR, METADATA_DIR = 'img_emb', 'metadata'
ROWS_PER_SHARD = 1_000_000  # --rows_per_shard: clip-retrieval's own shard size


def _shards(paths: List[str], rows_per_shard: int) -> Iterator[Tuple[List[str], int]]:
  """(a shard's parts, its rows), from the parts' footers."""
  shard, rows = [], 0
  for path in paths:
    shard.append(path)
    rows += committed.row_count(path)
    if rows >= rows_per_shard:
      yield shard, rows
      shard, rows = [], 0
  if shard:
    yield shard, rows


def _header(rows: int, dim: int, dtype: np.dtype) -> bytes:
  buffer = io.BytesIO()
  np.lib.format.write_array_header_1_0(buffer, {'descr': np.lib.format.dtype_to_descr(dtype),
                                                'fortran_order': False, 'shape': (rows, dim)})
  return buffer.getvalue()


def export(paths: List[str], column: str, dest: str, rows_per_shard: int = ROWS_PER_SHARD) -> dict:
  """Writes the shards; what it wrote."""
  schema = committed.schema(paths, column)
  field = schema.field(column).type
  dim, dtype = field.list_size, np.dtype(field.value_type.to_pandas_dtype())
  metadata_schema = schema.remove(schema.get_field_index(column))
  rows = shards = 0
  for n, (shard, count) in enumerate(_shards(paths, rows_per_shard)):
    with FileSystems.create(files.join(dest, EMBEDDINGS_DIR, f'img_emb_{n}.npy')) as vectors, \
        FileSystems.create(files.join(dest, METADATA_DIR, f'metadata_{n}.parquet')) as meta:
      vectors.write(_header(count, dim, dtype))
      with pq.ParquetWriter(meta, metadata_schema) as writer:
        for path in shard:
          for batch in committed.batches(path):
            vectors.write(np.ascontiguousarray(committed.matrix(batch.column(column)), dtype).tobytes())
            writer.write_batch(batch.drop_columns([column]))
    rows, shards = rows + count, shards + 1
  return {'format': 'npy', 'rows': rows, 'shards': shards, 'dim': dim, 'dtype': str(dtype)}
