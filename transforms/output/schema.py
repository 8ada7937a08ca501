"""The Parquet schemas of the two datasets, fixed before the job starts (no pyarrow type guessing)."""
from typing import Sequence, Tuple

import pyarrow as pa

# Columns --analyze_embeddings adds (transforms/analyze): the reduced embedding, and its whitened version.
PCA_COLUMN, WHITENED_COLUMN = 'embedding_pca', 'embedding_pca_whitened'


def reduced_columns(whiten: bool) -> Tuple[str, ...]:
  return (PCA_COLUMN, WHITENED_COLUMN) if whiten else (PCA_COLUMN,)


ERROR_SCHEMA = pa.schema([
    pa.field('id', pa.string()),
    pa.field('source', pa.string()),
    pa.field('stage', pa.string()),
    pa.field('error_type', pa.string()),
    pa.field('message', pa.string()),
])


def prediction_schema(classify: bool, embed: bool, labels: bool,
                      passthrough: Sequence[Tuple[str, pa.DataType]] = (), reduced: Sequence[str] = ()) -> pa.Schema:
  """Columns exist only for what the run produces, so readers never see all-null columns."""
  fields = [
      pa.field('id', pa.string()),
      pa.field('source', pa.string()),
      pa.field('width', pa.int32()),
      pa.field('height', pa.int32()),
      pa.field('model', pa.string()),
  ]
  if classify:
    fields.append(pa.field('top_classes', pa.list_(pa.int32())))
    if labels:
      fields.append(pa.field('top_labels', pa.list_(pa.string())))
    fields.append(pa.field('top_scores', pa.list_(pa.float32())))
  if embed:
    fields.append(pa.field('embedding', pa.list_(pa.float32())))
  fields.extend(pa.field(name, pa.list_(pa.float32())) for name in reduced)  # embedding_pca, ...
  fields.extend(pa.field(name, dtype) for name, dtype in passthrough)
  return pa.schema(fields)


RESERVED_COLUMNS = tuple(prediction_schema(True, True, True).names)  # passthrough columns may not take these
