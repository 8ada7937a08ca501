"""How the embedding column is stored: as the vector tools take it, with no conversion step between.

LanceDB and Lance index only fixed-size vectors (`fixed_size_list<float, D>`; a variable
`list<float>` is refused), and clip-retrieval and autofaiss want float16, L2-normalised
vectors. So the column is `fixed_size_list<float32 | float16, D>`, D known at launch from the
model, optionally normalised (--normalize_embeddings, in float32 before the cast), and each
Parquet file says so in its schema metadata (METADATA_KEY), with the model and the schema's
version (docs/output.md).
"""
import dataclasses
import json
from typing import Optional

import numpy as np
import pyarrow as pa

FLOAT32, FLOAT16 = 'float32', 'float16'
DTYPES = (FLOAT32, FLOAT16)
DEFAULT_DTYPE = FLOAT32  # --embedding_dtype
# 1: embeddings as list<float>; 2: as fixed_size_list<float32 | float16, D>, with METADATA_KEY.
SCHEMA_VERSION = 2
METADATA_KEY = 'image_inference'  # the Parquet schema metadata's key, its value a JSON object


def arrow_type(dim: int, dtype: str = FLOAT32) -> pa.DataType:
  return pa.list_(pa.float16() if dtype == FLOAT16 else pa.float32(), dim)


@dataclasses.dataclass(frozen=True)
class Vectors:
  """The embedding column's form: its size, its float type, whether each vector has unit L2 norm."""
  dim: int
  dtype: str = DEFAULT_DTYPE
  normalized: bool = False

  @property
  def arrow_type(self) -> pa.DataType:
    return arrow_type(self.dim, self.dtype)

  def shape(self, vector: np.ndarray) -> np.ndarray:
    """A model's float32 vector as the column holds it. A vector of norm 0 stays as it is."""
    if vector.size != self.dim:
      raise ValueError(f'the model gave an embedding of {vector.size} values; it declared {self.dim}')
    if self.normalized:
      norm = float(np.linalg.norm(vector))
      if norm > 0:
        vector = vector / norm
    return vector.astype(self.dtype, copy=False)

  def describe(self) -> dict:
    return {'dim': self.dim, 'dtype': self.dtype, 'normalized': self.normalized}


def metadata(model: str, vectors: Optional[Vectors]) -> dict:
  """The predictions schema's metadata: what a reader needs to use the vectors without asking the job."""
  value = {'schema_version': SCHEMA_VERSION, 'model': model,
           'embedding': vectors.describe() if vectors else None}
  return {METADATA_KEY: json.dumps(value, sort_keys=True)}


def read_metadata(schema: pa.Schema) -> Optional[dict]:
  """What metadata() wrote, from a Parquet file's schema (pyarrow.parquet.read_schema); None if absent."""
  found = (schema.metadata or {}).get(METADATA_KEY.encode())
  return json.loads(found) if found else None
