"""Format and write stages: top-k order, labels, the Parquet schema per task."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms import format as format_lib
from transforms import elements
from transforms.output import schema as schemas
from transforms.output import vectors


def test_top_k_is_ordered_best_first():
  scores = np.array([0.1, 0.5, 0.05, 0.3, 0.05], dtype=np.float32)
  assert format_lib.top_k(scores, 3).tolist() == [1, 3, 0]
  assert format_lib.top_k(scores, 10).tolist()[:2] == [1, 3]  # k larger than classes


def test_rows_carry_labels_scores_and_embedding(tmp_path):
  labels = tmp_path / 'labels.txt'
  labels.write_text('background\ncat\ndog\n')
  fn = format_lib.FormatRows('my-model', 2, str(labels))
  fn.setup()
  prediction = elements.Prediction(elements.ImageRef('x', 'file:///x.jpg', {'label': 3}), 10, 20,
                                  np.array([0.1, 0.2, 0.7], np.float32), np.ones(4, np.float32))
  ((dataset, unit, row),) = list(fn.process(prediction._replace(ref=prediction.ref._replace(unit='u1'))))
  assert (dataset, unit) == (format_lib.PREDICTIONS, 'u1')
  assert row['top_classes'] == [2, 1] and row['top_labels'] == ['dog', 'cat']
  assert np.allclose(row['top_scores'], [0.7, 0.2])
  assert row['label'] == 3
  schema = schemas.prediction_schema(True, vectors.Vectors(4), True, [('label', pa.int64())])
  table = pa.Table.from_pylist([row], schema=schema)  # the row fits the declared schema
  assert table.column('embedding').to_pylist() == [[1.0] * 4]


def test_schema_has_only_columns_the_task_produces():
  classify = schemas.prediction_schema(True, False, False).names
  embed = schemas.prediction_schema(False, vectors.Vectors(4), False).names
  assert 'top_classes' in classify and 'top_labels' not in classify and 'embedding' not in classify
  assert 'embedding' in embed and 'top_scores' not in embed
  assert schemas.ERROR_SCHEMA.names == ['id', 'source', 'stage', 'error_type', 'message']


def test_reduced_embedding_columns_follow_the_embedding():
  schema = schemas.prediction_schema(False, vectors.Vectors(512), False,
                                     reduced=('embedding_pca', 'embedding_pca_whitened'), reduced_dim=16)
  assert schema.names[-3:] == ['embedding', 'embedding_pca', 'embedding_pca_whitened']
  assert schema.field('embedding').type == pa.list_(pa.float32(), 512)  # fixed_size_list<float>[512]
  assert schema.field('embedding_pca').type == pa.list_(pa.float32(), 16)


def test_vectors_in_float16_normalised_with_their_description(tmp_path):
  """The form LanceDB, faiss and clip-retrieval take: fixed size, float16, unit norm, said in the file."""
  form = vectors.Vectors(3, vectors.FLOAT16, normalized=True)
  fn = format_lib.FormatRows('my-model', 1, vectors=form)
  fn.setup()
  prediction = elements.Prediction(elements.ImageRef('x', 'file:///x.jpg', unit='u'), 1, 1, None,
                                   np.array([3.0, 0.0, 4.0], np.float32))
  ((_, _, row),) = list(fn.process(prediction))
  assert row['embedding'].dtype == np.float16 and np.allclose(row['embedding'], [0.6, 0.0, 0.8], atol=1e-3)
  schema = schemas.prediction_schema(False, form, False, model='my-model')
  pq.write_table(pa.Table.from_pylist([row], schema=schema), tmp_path / 'part.parquet')
  read = pq.read_schema(tmp_path / 'part.parquet')
  stored = read.field('embedding').type
  assert isinstance(stored, pa.FixedSizeListType) and (stored.value_type, stored.list_size) == (pa.float16(), 3)
  assert vectors.read_metadata(read) == {'schema_version': vectors.SCHEMA_VERSION, 'model': 'my-model',
                                         'embedding': {'dim': 3, 'dtype': 'float16', 'normalized': True}}
  frame = pq.read_table(tmp_path / 'part.parquet').to_pandas()  # pandas takes it as arrays
  assert np.allclose(np.stack(frame['embedding']), [[0.6, 0.0, 0.8]], atol=1e-3)


def test_a_zero_vector_stays_zero_and_a_wrong_size_is_refused():
  form = vectors.Vectors(2, normalized=True)
  assert form.shape(np.zeros(2, np.float32)).tolist() == [0.0, 0.0]
  with pytest.raises(ValueError, match='embedding of 3 values; it declared 2'):
    form.shape(np.ones(3, np.float32))
