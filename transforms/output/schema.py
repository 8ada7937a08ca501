"""The Parquet schemas of the two datasets, fixed before the job starts (no pyarrow type guessing)."""
from typing import Optional, Sequence, Tuple

import pyarrow as pa

from transforms.output import vectors

EMBEDDING_COLUMN = 'embedding'

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


def prediction_schema(classify: bool, embedding: Optional[vectors.Vectors], labels: bool,
                      passthrough: Sequence[Tuple[str, pa.DataType]] = (), reduced: Sequence[str] = (),
                      reduced_dim: int = 0, model: str = '') -> pa.Schema:
  """Columns exist only for what the run produces, so readers never see all-null columns. The vectors are
  fixed-size (transforms/output/vectors.py): `reduced` columns of reduced_dim float32 values."""
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
  if embedding:
    fields.append(pa.field(EMBEDDING_COLUMN, embedding.arrow_type, nullable=False))
  fields.extend(pa.field(name, vectors.arrow_type(reduced_dim), nullable=False)  # embedding_pca, ...
                for name in reduced)
  fields.extend(pa.field(name, dtype) for name, dtype in passthrough)
  return pa.schema(fields, metadata=vectors.metadata(model, embedding))


# passthrough columns may not take these
RESERVED_COLUMNS = tuple(prediction_schema(True, vectors.Vectors(1), True).names)
