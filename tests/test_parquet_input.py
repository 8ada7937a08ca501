"""Parquet image tables as input: the shared photos as a Hugging Face image table (pyarrow, in the exact layout
`datasets` writes), as a table of their locations and as files give the same top-1 and embeddings for every id;
a corrupt or null image is an error row and the rest of its row group is labelled; a row group whose pages do
not parse is an error row per row, counted from the footer; bad columns exit 2 before any work."""
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import pack
from tests import datagen
from transforms.read import match
from transforms.read.formats import detect, parquet_table

JOB = ['--model', datagen.HUB_CLASSIFIER, '--task', 'both', '--labels_file', str(datagen.LABELS), '--top_k', '5']
RESERVED = ('id', 'source', 'embedding')


def _hf_table(path, photos, with_id: bool = False, row_group_size: int = 4, replace=None) -> None:
  """The photos as `datasets` writes an Image feature: struct<bytes, path>, its features in the metadata."""
  images = [{'bytes': p.read_bytes(), 'path': p.name} for p in photos]
  for i, data in (replace or {}).items():
    images[i] = None if data is None else {'bytes': data, 'path': photos[i].name}
  columns = {'image': pa.array(images, pack.IMAGE_STRUCT), 'label': pa.array(range(len(photos)), pa.int64()),
             'caption': [f'a photo of {p.stem}' for p in photos]}
  if with_id:
    columns = {'id': [p.stem for p in photos], **columns}
  schema = pa.table(columns).schema.with_metadata({'huggingface': json.dumps(pack.HF_FEATURES)})
  pq.write_table(pa.table(columns, schema=schema), path, row_group_size=row_group_size)


def _by_id(result, key=lambda i: i):
  rows = {key(r['id']): r for r in result.predictions.to_pylist()}
  assert len(rows) == result.predictions.num_rows
  return rows


def _cosine(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_the_image_struct_is_found_and_a_column_named_id_is_the_id():
  schema = pa.schema([('id', pa.string()), ('image', pack.IMAGE_STRUCT), ('width', pa.int32())])
  assert parquet_table.resolve(schema, None, None, None, RESERVED, 'x') == parquet_table.TableColumns(
      'image', parquet_table.STRUCT, 'id', ('width',))
  uri = pa.schema([('url', pa.string()), ('caption', pa.string()), ('key', pa.int64())])
  assert parquet_table.resolve(uri, 'url', 'key', None, RESERVED, 'x') == parquet_table.TableColumns(
      'url', parquet_table.URI, 'key', ('caption',))


@pytest.mark.parametrize('schema, image, wanted', [
    (pa.schema([('url', pa.string())]), None, '--image_column'),
    (pa.schema([('a', pa.binary()), ('b', pa.binary())]), None, 'more than one'),
    (pa.schema([('image', pa.binary()), ('embedding', pa.binary())]), 'image', '--passthrough_keys'),
    (pa.schema([('image', pa.int64())]), 'image', 'not binary'),
    (pa.schema([('image', pa.binary())]), 'picture', "no column 'picture'"),
])
def test_columns_that_do_not_fit_are_refused_with_what_to_pass(schema, image, wanted):
  with pytest.raises(parquet_table.TableError, match=wanted):
    parquet_table.resolve(schema, image, None, None, RESERVED, 'table.parquet')


def test_units_are_row_groups_counted_from_the_footer_and_a_uri_tables_large_group_is_cut(tmp_path):
  path = tmp_path / 't.parquet'
  pq.write_table(pa.table({'url': [f'{i}.jpg' for i in range(1000)]}), path, row_group_size=400)
  metadata = pq.read_metadata(path)
  size = path.stat().st_size
  groups = list(parquet_table.spans(str(path), size, metadata, None))
  assert [(s.group, s.start, s.end) for s in groups] == [(0, 0, 400), (1, 400, 800), (2, 800, 1000)]
  cut = list(parquet_table.spans(str(path), size, metadata, 10))  # at most MAX_RANGES_PER_GROUP ranges a group
  assert len([s for s in cut if s.group == 0]) == parquet_table.MAX_RANGES_PER_GROUP
  assert [s.start for s in cut] == sorted(s.start for s in cut) and cut[-1].end == 1000
  assert sum(s.end - s.start for s in cut) == 1000 and len({parquet_table.unit_name(s) for s in cut}) == len(cut)


def test_a_null_image_struct_is_a_null_image_whatever_its_fields_hold():
  fields = [pa.array([b'a', b'b', b'c']), pa.array(['a.jpg', 'b.jpg', None])]
  struct = pa.StructArray.from_arrays(fields, fields=list(pack.IMAGE_STRUCT), mask=pa.array([False, True, False]))
  columns = parquet_table.TableColumns('image', parquet_table.STRUCT, None, ())
  got = list(parquet_table.rows('/t.parquet', 10, pa.table({'image': struct}), columns, None))
  assert [(r.id, r.source, r.image) for r in got] == [
      ('a.jpg', '/t.parquet#row=10', b'a'), ('/t.parquet#row=11', '/t.parquet#row=11', None),
      ('/t.parquet#row=12', '/t.parquet#row=12', b'c')]


def test_a_folder_of_tar_shards_with_their_parquet_metadata_is_read_as_tar(tmp_path):
  (tmp_path / '00000.parquet').write_bytes(b'PAR1')
  (tmp_path / '00000.tar').write_bytes(b'')
  assert detect.format_by_name('x/00000.parquet') == detect.PARQUET
  assert detect.format_by_content(b'PAR1' + bytes(600)) == detect.PARQUET
  assert match.first_file(str(tmp_path)) == str(tmp_path / '00000.tar')


@pytest.fixture(scope='module', name='files_run')
def files_run_fixture(tmp_path_factory):
  from tests.conftest import run_job  # pylint: disable=import-outside-toplevel
  result = run_job(tmp_path_factory.mktemp('files') / 'out', ['--input', f'{datagen.PHOTOS}/*'] + JOB)
  assert result.errors.num_rows == 0 and result.predictions.num_rows == len(datagen.photo_paths())
  return result


@pytest.mark.full
def test_an_hf_table_a_uri_table_and_the_files_give_the_same_top1_and_embeddings(tmp_path, run_job, files_run):
  photos = datagen.photo_paths()
  _hf_table(tmp_path / 'hf.parquet', photos)  # no id column: the struct's path is the id
  tables = tmp_path / 'tables'
  tables.mkdir()
  locations = [os.path.relpath(p, tables) if i % 2 else str(p) for i, p in enumerate(photos)]  # relative to it
  pq.write_table(pa.table({'key': [p.stem for p in photos], 'url': locations}), tables / 'uri.parquet')
  files = _by_id(files_run)
  hf = run_job(tmp_path / 'hf', ['--input', str(tmp_path / 'hf.parquet')] + JOB)
  uri = run_job(tmp_path / 'uri', ['--input', str(tables / 'uri.parquet'), '--image_column', 'url',
                                   '--id_column', 'key'] + JOB)
  for result, key in ((hf, lambda i: os.path.splitext(i)[0]), (uri, lambda i: i)):
    assert result.summary['accounted'] and result.errors.num_rows == 0
    rows = _by_id(result, key)
    assert rows.keys() == files.keys()
    for name, row in rows.items():
      assert row['top_classes'][0] == files[name]['top_classes'][0], name
      assert _cosine(row['embedding'], files[name]['embedding']) >= 0.9999, name
  hf_rows = hf.predictions.to_pylist()
  assert {r['caption'] for r in hf_rows} == {f'a photo of {p.stem}' for p in photos}  # passed through, typed
  assert hf.predictions.schema.field('label').type == pa.int64()
  assert all(r['source'].startswith(f'{tmp_path}/hf.parquet#row=') for r in hf_rows)
  assert {r['source'] for r in uri.predictions.to_pylist()} == {str(p) for p in photos}
  schema = pq.read_schema(next((tmp_path / 'hf' / 'predictions').glob('*.parquet')))
  assert str(schema.field('embedding').type) == 'fixed_size_list<element: float>[512]'


@pytest.mark.full
def test_a_corrupt_and_a_null_image_are_error_rows_and_the_rest_of_the_group_is_labelled(tmp_path, run_job):
  photos = datagen.photo_paths()
  _hf_table(tmp_path / 'hf.parquet', photos, with_id=True, row_group_size=6, replace={2: b'not an image', 4: None})
  result = run_job(tmp_path / 'out', ['--input', str(tmp_path / 'hf.parquet')] + JOB)
  assert result.summary['accounted'] and result.summary['rows_written'] == 4 and result.summary['errors'] == 2
  errors = {r['id']: r for r in result.errors.to_pylist()}
  assert errors.keys() == {photos[2].stem, photos[4].stem}
  assert errors[photos[2].stem]['stage'] == 'decode' and errors[photos[4].stem]['stage'] == 'read'
  assert errors[photos[4].stem]['source'] == f'{tmp_path}/hf.parquet#row=4'
  assert {r['id'] for r in result.predictions.to_pylist()} == {p.stem for i, p in enumerate(photos) if i not in (2, 4)}


@pytest.mark.full
def test_a_row_group_that_does_not_parse_is_an_error_row_per_row(tmp_path, run_job):
  photos = datagen.photo_paths()
  path = tmp_path / 'hf.parquet'
  _hf_table(path, photos, with_id=True, row_group_size=2)
  chunk = pq.read_metadata(path).row_group(1).column(1)  # group 1's image bytes: its first page header
  with open(path, 'r+b') as f:
    f.seek(chunk.data_page_offset)
    f.write(b'\xff' * 24)
  result = run_job(tmp_path / 'out', ['--input', str(path)] + JOB)
  assert result.summary['accounted'] and result.summary['rows_written'] == 4
  assert sorted(r['source'] for r in result.errors.to_pylist()) == [f'{path}#row=2', f'{path}#row=3']
  assert {r['id'] for r in result.predictions.to_pylist()} == {p.stem for i, p in enumerate(photos) if i not in (2, 3)}


def _exit(args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'pipeline', '--output', '/nonexistent/out'] + args + JOB,
                        capture_output=True, text=True, timeout=300)


def test_bad_table_options_exit_2_before_any_work(tmp_path):
  table = tmp_path / 'uri.parquet'
  pq.write_table(pa.table({'url': ['a.jpg'], 'caption': ['x']}), table)
  no_column = _exit(['--input', str(table)])
  assert no_column.returncode == 2 and '--image_column' in no_column.stderr
  typed = _exit(['--input', str(table), '--image_column', 'url', '--passthrough_keys', 'caption:string'])
  assert typed.returncode == 2 and 'their own types' in typed.stderr
  elsewhere = _exit(['--input', f'{datagen.PHOTOS}/*', '--image_column', 'url'])
  assert elsewhere.returncode == 2 and 'tables (Parquet, Arrow) only' in elsewhere.stderr


@pytest.mark.full
def test_resume_skips_the_committed_row_groups_and_reads_the_others(tmp_path, run_job):
  photos = datagen.photo_paths()
  _hf_table(tmp_path / 'hf.parquet', photos, with_id=True, row_group_size=2)
  args = ['--input', str(tmp_path / 'hf.parquet')] + JOB
  first = run_job(tmp_path / 'out', args)
  markers = sorted((tmp_path / 'out' / '_units').glob('*.json'))
  assert len(markers) == 3 and sorted(json.loads(m.read_text())['unit'] for m in markers) == sorted(
      f'{tmp_path}/hf.parquet#rows={a}-{a + 2}' for a in (0, 2, 4))
  (tmp_path / 'out' / 'summary.json').unlink()
  markers[0].unlink()  # as if the job had died before that unit's commit
  resumed = run_job(tmp_path / 'out', args + ['--resume'])
  assert resumed.summary['accounted'] and resumed.summary['resumed']['skipped_units'] == 2
  assert sorted(r['id'] for r in resumed.predictions.to_pylist()) == sorted(
      r['id'] for r in first.predictions.to_pylist())


@pytest.mark.full
def test_a_later_table_without_a_column_gives_nulls_and_a_narrower_type_is_cast(tmp_path, run_job):
  photos = datagen.photo_paths()
  _hf_table(tmp_path / 'a.parquet', photos[:3], with_id=True)
  images = [{'bytes': p.read_bytes(), 'path': p.name} for p in photos[3:]]
  pq.write_table(pa.table({'id': [p.stem for p in photos[3:]], 'image': pa.array(images, pack.IMAGE_STRUCT),
                           'label': pa.array([7, 8, 9], pa.int32())}), tmp_path / 'b.parquet')
  result = run_job(tmp_path / 'out', ['--input', f'{tmp_path}/a.parquet,{tmp_path}/b.parquet'] + JOB)  # a first
  assert result.summary['accounted'] and result.summary['rows_written'] == 6 and result.errors.num_rows == 0
  rows = _by_id(result)
  assert [rows[p.stem]['caption'] for p in photos[3:]] == [None] * 3
  assert [rows[p.stem]['label'] for p in photos[3:]] == [7, 8, 9] and rows[photos[0].stem]['caption']
  assert result.predictions.schema.field('label').type == pa.int64()
