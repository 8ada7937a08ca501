"""The embedding column as vector tools take it, end to end on the shared photos: fixed-size, float16 and
normalised when asked, described in each file's metadata, the same vectors as float32 up to rounding; and an
output is continued only with the same form and schema version."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import run
from tests import conftest, datagen
from transforms.output import vectors

JOB = ['--input', f'{datagen.PHOTOS}/*', '--model', datagen.HUB_FEATURES, '--task', 'embed']


@pytest.fixture(scope='module', name='plain')
def plain_fixture(tmp_path_factory) -> conftest.JobResult:
  return conftest.run_job(tmp_path_factory.mktemp('plain') / 'out', JOB)


def _matrix(table: pa.Table) -> np.ndarray:
  order = np.argsort(table.column('id').to_pylist())
  return np.stack(table.column('embedding').to_pandas())[order].astype(np.float32)


def test_float32_vectors_are_fixed_size_with_their_description(plain):
  part = next((plain.output / 'predictions').glob('*.parquet'))
  schema = pq.read_schema(part)
  stored = schema.field('embedding').type
  assert isinstance(stored, pa.FixedSizeListType) and (stored.value_type, stored.list_size) == (pa.float32(), 512)
  assert vectors.read_metadata(schema) == {'schema_version': vectors.SCHEMA_VERSION, 'model': datagen.HUB_FEATURES,
                                           'embedding': {'dim': 512, 'dtype': 'float32', 'normalized': False}}
  assert plain.predictions.num_rows == len(datagen.photo_paths())


def test_float16_normalised_vectors_are_the_same_directions(plain, tmp_path):
  job = conftest.run_job(tmp_path / 'out', JOB + ['--embedding_dtype', 'float16', '--normalize_embeddings'])
  stored = job.predictions.schema.field('embedding').type
  assert (stored.value_type, stored.list_size) == (pa.float16(), 512)
  assert vectors.read_metadata(job.predictions.schema)['embedding'] == {'dim': 512, 'dtype': 'float16',
                                                                       'normalized': True}
  half, full = _matrix(job.predictions), _matrix(plain.predictions)
  assert np.allclose(np.linalg.norm(half, axis=1), 1.0, atol=1e-3)
  cosine = np.sum(half * full, axis=1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
  assert cosine.min() >= 0.9999, cosine


def test_resume_needs_the_same_vectors_and_schema_version(plain, tmp_path, capsys):
  out = tmp_path / 'out'
  conftest.run_job(out, JOB)
  assert run.main(['--output', str(out), '--resume', '--noreport', '--embedding_dtype', 'float16'] + JOB) == 2
  assert 'embedding_dtype' in capsys.readouterr().err
  record = json.loads((out / 'job.json').read_text())
  del record['schema_version']  # as a job of schema version 1 wrote it
  (out / 'job.json').write_text(json.dumps(record))
  assert run.main(['--output', str(out), '--resume', '--noreport'] + JOB) == 2
  assert 'schema_version' in capsys.readouterr().err


def test_vector_options_without_embeddings_exit_2(capsys):
  assert run.main(['--output', '/tmp/unused', '--input', 'x', '--model', datagen.HUB_CLASSIFIER, '--task',
                   'classify', '--normalize_embeddings']) == 2
  assert '--normalize_embeddings need embeddings' in capsys.readouterr().err
  assert run.main(['--output', '/tmp/unused', '--input', 'x', '--model', datagen.HUB_FEATURES, '--task', 'embed',
                   '--embedding_dtype', 'float64']) == 2
  assert '--embedding_dtype must be one of float32, float16' in capsys.readouterr().err
