"""The whole job on the local runner: real models by their real handles, real photos, real Parquet."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests import datagen

GOLDEN_TOP1_PHOTOS = ('bird', 'cat', 'hot_dog', 'missvickie_potato_chips')


def _photos_dir(tmp_path):
  directory = tmp_path / 'photos'
  directory.mkdir()
  for path in datagen.photo_paths():
    shutil.copy(path, directory / path.name)
  return directory


def test_classify_by_handle_matches_golden_top1(tmp_path, run_job):
  photos = _photos_dir(tmp_path)
  result = run_job(tmp_path / 'out', [
      '--input', f'{photos}/*', '--model', datagen.HUB_CLASSIFIER, '--task', 'classify',
      '--labels_file', str(datagen.LABELS), '--top_k', '5'
  ])
  rows = {r['id']: r for r in result.predictions.to_pylist()}
  golden = datagen.golden()
  assert len(rows) == len(golden) == result.summary['rows_written']
  for name in GOLDEN_TOP1_PHOTOS:
    file_name = next(f for f in golden if f.startswith(name + '.'))
    expected = golden[file_name]['pil_bilinear'][0]
    row = rows[name]
    assert row['top_classes'][0] == expected['index'], (name, row['top_labels'], expected)
    assert row['top_labels'][0] == expected['label']
    assert len(row['top_classes']) == len(row['top_scores']) == 5
    assert row['top_scores'] == sorted(row['top_scores'], reverse=True)
    assert (row['width'], row['height']) == (golden[file_name]['width'], golden[file_name]['height'])
    assert row['model'] == datagen.HUB_CLASSIFIER
    assert row['source'].endswith(file_name)
  assert 'embedding' not in result.predictions.column_names
  assert result.errors.num_rows == 0


@pytest.mark.full
def test_embeddings_are_512d_finite_and_meaningful(tmp_path, run_job):
  photos = tmp_path / 'photos'
  photos.mkdir()
  for name in ('cat.bmp', 'hot_dog.jpg'):
    shutil.copy(datagen.PHOTOS / name, photos / name)
  cat = Image.open(datagen.PHOTOS / 'cat.bmp').convert('RGB')
  cat.resize((int(cat.width * 0.9), int(cat.height * 0.9)), Image.Resampling.BICUBIC).save(
      photos / 'cat_copy.jpg', 'JPEG', quality=85)
  result = run_job(tmp_path / 'out', ['--input', f'{photos}/*', '--model', datagen.HUB_FEATURES, '--task', 'embed'])
  frame = pd.read_parquet(tmp_path / 'out' / 'predictions')  # pandas reads it as is
  vectors = {row.id: np.asarray(row.embedding, dtype=np.float32) for row in frame.itertuples()}
  assert set(vectors) == {'cat', 'hot_dog', 'cat_copy'}
  for vector in vectors.values():
    assert vector.shape == (512,) and np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0

  def cosine(a, b):
    return float(vectors[a] @ vectors[b] / np.linalg.norm(vectors[a]) / np.linalg.norm(vectors[b]))

  assert cosine('cat', 'cat_copy') > cosine('cat', 'hot_dog') + 0.1
  assert 'top_classes' not in result.predictions.column_names


@pytest.mark.full
def test_corrupt_file_goes_to_errors_and_job_succeeds(tmp_path, run_job):
  photos = _photos_dir(tmp_path)
  good = (datagen.PHOTOS / 'hot_dog.jpg').read_bytes()
  (photos / 'broken.jpg').write_bytes(good[:len(good) // 3])  # truncated JPEG
  (photos / 'notes.jpg').write_bytes(b'this is a text file, not a JPEG')
  result = run_job(tmp_path / 'out', ['--input', f'{photos}/*', '--model', datagen.HUB_CLASSIFIER, '--task', 'both'])
  inputs = len(list(photos.iterdir()))
  errors = {r['id']: r for r in result.errors.to_pylist()}
  assert set(errors) == {'broken', 'notes'}
  assert all(e['stage'] == 'decode' and e['message'] and e['source'].endswith('.jpg') for e in errors.values())
  assert result.predictions.num_rows + result.errors.num_rows == inputs
  assert result.summary['records_read'] == inputs
  assert result.summary['rows_written'] == result.predictions.num_rows == inputs - 2
  assert result.summary['errors'] == 2 and result.summary['errors_by_stage'] == {'decode': 2}
  on_disk = json.loads((tmp_path / 'out' / 'summary.json').read_text())
  assert on_disk == result.summary


@pytest.mark.full
def test_command_line_shows_progress_and_summary(tmp_path):
  photos = _photos_dir(tmp_path)
  out = tmp_path / 'out'
  proc = subprocess.run([
      sys.executable, '-m', 'pipeline', '--input', f'{photos}/*', '--output', str(out), '--model',
      str(datagen.HUB_DIRS[datagen.HUB_FEATURES]), '--task', 'embed', '--progress_seconds', '0.001',
      '--max_batch_size', '1', '--min_batch_size', '1'
  ], capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'progress: 6/6 images (100.0%)' in proc.stderr and 'progress: worker' not in proc.stderr  # one line
  printed = json.loads(proc.stdout)
  assert printed['rows_written'] == 6 and printed['records_read'] == 6 and printed['errors'] == 0
  assert printed['images_per_second'] > 0 and printed['wall_seconds'] > 0
