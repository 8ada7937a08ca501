"""python -m pipeline.export on a real output of the job (the shared photos and generated variants): the npy
layout that faiss indexes and the Lance dataset that LanceDB opens, each answering a nearest-neighbour query
with the query image's own row; only finished outputs, read through their manifest."""
import json
import pathlib

import faiss
import lancedb
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.export import __main__ as export
from tests import conftest, datagen

GENERATED = 60


@pytest.fixture(scope='module', name='job')
def job_fixture(tmp_path_factory) -> conftest.JobResult:
  images = tmp_path_factory.mktemp('export_images')
  for path in datagen.photo_paths():
    (images / path.name).write_bytes(path.read_bytes())
  datagen.make_jpegs(images / 'generated', GENERATED, seed=3)
  return conftest.run_job(tmp_path_factory.mktemp('export_job') / 'out', [
      '--input', f'{images}/*.*,{images}/generated/*.jpg', '--model', datagen.HUB_FEATURES, '--task', 'embed',
      '--embedding_dtype', 'float16', '--normalize_embeddings', '--files_per_unit', '16'])  # several parts


def _export(capsys, *argv) -> dict:
  assert export.main([str(a) for a in argv]) == 0
  return json.loads(capsys.readouterr().out)


def _by_id(job: conftest.JobResult) -> dict:
  table = job.predictions
  return dict(zip(table.column('id').to_pylist(), np.stack(table.column('embedding').to_pandas())))


def test_npy_shards_are_row_aligned_and_faiss_finds_each_image_itself(job, tmp_path, capsys):
  written = _export(capsys, job.output, tmp_path / 'npy', '--to', 'npy', '--rows_per_shard', '20')
  rows = job.predictions.num_rows
  assert written['rows'] == rows and written['shards'] > 1 and written['dtype'] == 'float16'
  shards = sorted((tmp_path / 'npy' / 'img_emb').glob('img_emb_*.npy'), key=lambda p: int(p.stem.split('_')[-1]))
  vectors = np.concatenate([np.load(p) for p in shards])
  ids = [i for n in range(len(shards)) for i in
         pq.read_table(tmp_path / 'npy' / 'metadata' / f'metadata_{n}.parquet').column('id').to_pylist()]
  assert vectors.shape == (rows, 512) and vectors.dtype == np.float16 and len(ids) == rows == len(set(ids))
  by_id = _by_id(job)
  assert all(np.array_equal(vectors[n], by_id[i]) for n, i in enumerate(ids))  # row n of each is one image
  index = faiss.IndexFlatIP(512)  # unit vectors: inner product is the cosine
  index.add(vectors.astype(np.float32))
  _, found = index.search(vectors.astype(np.float32), 1)
  assert (found[:, 0] == np.arange(rows)).all()


@pytest.mark.parametrize('index', ['none', 'ivf_pq'])
def test_lancedb_opens_the_export_and_finds_each_image_itself(job, tmp_path, capsys, index):
  written = _export(capsys, job.output, tmp_path / 'db' / 'images.lance', '--to', 'lance', '--index', index)
  assert written['rows'] == job.predictions.num_rows
  table = lancedb.connect(tmp_path / 'db').open_table('images')
  assert table.count_rows() == job.predictions.num_rows
  assert bool(table.list_indices()) == (index != 'none')
  for image_id, vector in list(_by_id(job).items())[::7]:
    query = table.search(vector.astype(np.float32)).distance_type('cosine').limit(1)
    if index != 'none':
      query = query.nprobes(64).refine_factor(20)  # exact distances for the candidates the index gives
    assert query.to_list()[0]['id'] == image_id


def test_only_a_finished_output_is_exported(job, tmp_path, capsys):
  out = tmp_path / 'copy'
  out.mkdir()
  for name in ('manifest.json', 'job.json'):
    (out / name).write_bytes((job.output / name).read_bytes())
  assert export.main([str(out), str(tmp_path / 'npy'), '--to', 'npy']) == 2
  assert 'not a finished output (no summary.json)' in capsys.readouterr().err
  assert not (tmp_path / 'npy').exists()


def test_bad_export_options_exit_2_before_any_work(job, tmp_path, capsys):
  dest = pathlib.Path(tmp_path / 'taken')
  dest.mkdir()
  assert export.main([str(job.output), str(dest), '--to', 'npy']) == 2
  assert 'exists: pass --overwrite' in capsys.readouterr().err
  assert export.main([str(job.output), str(dest), '--to', 'npy', '--index', 'ivf_pq']) == 2
  assert '--index builds a Lance index' in capsys.readouterr().err
  assert export.main([str(job.output), str(dest), '--to', 'csv']) == 2
  assert "invalid choice: 'csv'" in capsys.readouterr().err
  assert export.main([str(job.output), str(dest), '--to', 'npy', '--column', 'embedding_pca']) == 2
  assert 'no embedding_pca column' in capsys.readouterr().err
