"""A Lance dataset of the output's rows, which LanceDB opens as a table (lancedb.connect(folder).open_table(name)
for DEST = folder/name.lance), with an optional vector index. Lance takes the rows as a stream of batches."""
import math
from typing import Iterator, List, Optional

import pyarrow as pa

from pipeline.export import committed

INDEXES = ('none', 'ivf_pq', 'ivf_hnsw_sq')  # --index
METRIC = 'cosine'  # the index's distance, right for normalised vectors and for MobileNet's alike


def _index_options(rows: int, dim: int, kind: str) -> dict:
  """Lance's rule of thumb: about sqrt(rows) partitions; PQ with sub-vectors of 16 (or 8) values."""
  found = {'num_partitions': max(1, min(4096, round(math.sqrt(rows))))}
  if kind == 'ivf_pq':
    found['num_sub_vectors'] = dim // 16 if dim % 16 == 0 else dim // 8 if dim % 8 == 0 else 1
  return found


def export(paths: List[str], column: str, dest: str, index: Optional[str] = None) -> dict:
  import lance  # pylint: disable=import-outside-toplevel  # only this format needs it

  schema = committed.schema(paths, column)

  def batches() -> Iterator[pa.RecordBatch]:
    for path in paths:
      yield from committed.batches(path)

  dataset = lance.write_dataset(pa.RecordBatchReader.from_batches(schema, batches()), dest)
  rows, dim = dataset.count_rows(), schema.field(column).type.list_size
  if index and index != 'none' and rows:
    dataset.create_index(column, index_type=index.upper(), metric=METRIC, **_index_options(rows, dim, index))
  return {'format': 'lance', 'rows': rows, 'dim': dim, 'index': index or 'none'}
