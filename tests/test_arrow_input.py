"""Arrow IPC tables as input: a folder as Hugging Face's `save_to_disk` leaves it (IPC streams beside its JSON
files) and a Feather file give the files' top-1 and embeddings; a stream that breaks off gives the rows before
it and a `stopped` error row, and the summary is not `accounted`."""
import json

import numpy as np
import pyarrow as pa
import pytest

from pipeline import pack
from tests import datagen
from transforms.read.formats import detect

JOB = ['--model', datagen.HUB_CLASSIFIER, '--task', 'both', '--labels_file', str(datagen.LABELS), '--top_k', '5']


def _table(photos) -> pa.Table:
  images = [{'bytes': p.read_bytes(), 'path': p.name} for p in photos]
  return pa.table({'image': pa.array(images, pack.IMAGE_STRUCT), 'label': pa.array(range(len(photos)), pa.int64())})


def _write(path, table: pa.Table, stream: bool = True, batch_rows: int = 2) -> None:
  with (pa.ipc.new_stream if stream else pa.ipc.new_file)(str(path), table.schema) as writer:
    for batch in table.to_batches(max_chunksize=batch_rows):
      writer.write_batch(batch)


def test_arrow_files_are_told_by_name_and_by_content():
  assert detect.format_by_name('ds/train/data-00000-of-00004.arrow') == detect.ARROW
  assert detect.format_by_name('x.feather') == detect.ARROW
  assert detect.format_by_content(b'ARROW1\x00\x00' + bytes(600)) == detect.ARROW


@pytest.mark.full
def test_a_save_to_disk_folder_and_a_feather_file_give_the_files_rows(tmp_path, run_job):
  photos = datagen.photo_paths()
  saved = tmp_path / 'saved'
  saved.mkdir()
  _write(saved / 'data-00000-of-00002.arrow', _table(photos[:4]))
  _write(saved / 'data-00001-of-00002.arrow', _table(photos[4:]))
  (saved / 'dataset_info.json').write_text(json.dumps({'features': {'image': {'_type': 'Image'}}}))
  (saved / 'state.json').write_text('{}')
  _write(tmp_path / 'photos.feather', _table(photos), stream=False)
  files = {r['id']: r for r in run_job(tmp_path / 'files', ['--input', str(datagen.PHOTOS)] + JOB).predictions.to_pylist()}
  for source, labels in ((str(saved), [0, 0, 1, 1, 2, 3]), (str(tmp_path / 'photos.feather'), [0, 1, 2, 3, 4, 5])):
    result = run_job(tmp_path / 'out', ['--input', source, '--overwrite'] + JOB)
    assert result.summary['accounted'] and result.errors.num_rows == 0
    rows = {r['id'].rsplit('.', 1)[0]: r for r in result.predictions.to_pylist()}  # ids: the struct's path
    assert rows.keys() == files.keys()
    for name, row in rows.items():
      assert row['top_classes'][0] == files[name]['top_classes'][0], name
      cosine = np.dot(row['embedding'], files[name]['embedding']) / (
          np.linalg.norm(row['embedding']) * np.linalg.norm(files[name]['embedding']))
      assert cosine >= 0.9999, name
    assert sorted(r['label'] for r in result.predictions.to_pylist()) == labels  # passed through
    if source == str(saved):
      assert result.summary['skipped_files'] == {'.json': 2}  # the folder's JSON files, counted, not read


@pytest.mark.full
def test_a_stream_that_breaks_off_gives_the_rows_before_and_is_not_accounted(tmp_path, run_job):
  photos = datagen.photo_paths()
  path = tmp_path / 'data.arrow'
  _write(path, _table(photos), batch_rows=2)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) * 3 // 4])  # into the third batch
  result = run_job(tmp_path / 'out', ['--input', str(path)] + JOB)
  assert not result.summary['accounted']
  assert result.predictions.num_rows == 4
  error, = result.errors.to_pylist()
  assert error['source'] == f'{path}#row=4' and 'reading stopped at row 4' in error['message']
