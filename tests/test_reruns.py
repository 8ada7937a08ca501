"""Reruns over an existing output: refused unless --overwrite or --resume; --resume only for the same job."""
import json
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests import datagen

MODEL = str(datagen.TFLITE_QUANT)


def _job(tmp_path, *extra, model=MODEL, output=None):
  args = [sys.executable, '-m', 'pipeline', '--input', f'{datagen.PHOTOS}/*', '--output',
          str(output or tmp_path / 'out'), '--model', model, '--task', 'both', '--labels_file', str(datagen.LABELS)]
  return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=600, check=False)


def _files(folder):
  return sorted(p.relative_to(folder) for p in folder.rglob('*') if p.is_file())


def _run_ids(out):
  """The runs that committed the units whose parts are in the datasets (from the units' markers)."""
  markers = [json.loads(p.read_text()) for p in (out / '_units').glob('*.json')]
  parts = {p.name for name in ('predictions', 'errors') for p in (out / name).glob('part-*.parquet')}
  assert parts - {'part-empty.parquet'} == {part for m in markers for part in m['parts'].values()}
  return {m['run'] for m in markers}


@pytest.mark.full
def test_used_output_is_refused_then_overwritten(tmp_path):
  out = tmp_path / 'out'
  first = _job(tmp_path)
  assert first.returncode == 0, first.stderr[-2000:]
  before = {p: (out / p).read_bytes() for p in _files(out)}
  first_run = _run_ids(out)
  assert len(first_run) == 1
  refused = _job(tmp_path, '--top_k', '3')
  assert refused.returncode == 2 and 'already holds a job\'s output' in refused.stderr
  assert '--overwrite' in refused.stderr and '--resume' in refused.stderr
  assert {p: (out / p).read_bytes() for p in _files(out)} == before  # untouched
  again = _job(tmp_path, '--top_k', '3', '--task', 'classify', '--overwrite')
  assert again.returncode == 0, again.stderr[-2000:]
  table = pq.read_table(out / 'predictions')
  assert table.num_rows == 6 and 'embedding' not in table.column_names  # nothing of the first run is left
  assert all(len(classes) == 3 for classes in table['top_classes'].to_pylist())
  assert json.loads((out / 'job.json').read_text())['top_k'] == 3
  assert len(_run_ids(out)) == 1 and _run_ids(out) != first_run


@pytest.mark.parametrize('change, message', [
    (['--top_k', '3'], "top_k: 5 then, 3 now"),
    (['--resize_method', 'bicubic'], "resize_method: 'bilinear' then, 'bicubic' now"),
    (['--files_per_unit', '8'], "files_per_unit: 1000 then, 8 now (it cuts the image files into read units"),
])
@pytest.mark.full
def test_resume_with_other_options_is_refused(tmp_path, change, message):
  assert _job(tmp_path).returncode == 0
  proc = _job(tmp_path, '--resume', *change)
  assert proc.returncode == 2 and message in proc.stderr and '--overwrite' in proc.stderr, proc.stderr[-2000:]


@pytest.mark.full
def test_resume_with_a_changed_model_is_refused(tmp_path):
  model = tmp_path / 'model.tflite'
  shutil.copy(datagen.TFLITE_QUANT, model)
  assert _job(tmp_path, model=str(model)).returncode == 0
  shutil.copy(datagen.MODELS / 'tflite' / 'mobilenet_v1_0.25_128_quant.tflite', model)  # new weights, same name
  proc = _job(tmp_path, '--resume', model=str(model))
  assert proc.returncode == 2 and 'is not the one that wrote' in proc.stderr, proc.stderr[-2000:]


@pytest.mark.full
def test_resume_of_a_complete_output_keeps_it(tmp_path):
  out = tmp_path / 'out'
  assert _job(tmp_path, '--resume').returncode == 0  # a first run under --resume, as Airflow's are: not a resume
  assert 'resumed' not in json.loads((out / 'summary.json').read_text())
  rows = pq.read_table(out / 'predictions').sort_by('id').to_pylist()
  proc = _job(tmp_path, '--resume')
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.loads((out / 'summary.json').read_text())
  units = len(list((out / '_units').glob('*.json')))  # 6 photos: one unit of image files by default
  assert summary['resumed'] == {'skipped_units': units, 'skipped_records': 6, 'redone_units': 0,
                                'redone_records': 0} and units == 1
  assert summary['accounted'] and summary['rows_written'] == 6
  assert pq.read_table(out / 'predictions').sort_by('id').to_pylist() == rows
  assert not (out / '_staging').exists()


@pytest.mark.parametrize('extra, message', [
    (['--overwrite', '--resume'], '--overwrite and --resume exclude each other'),
    (['--checkpoint_rows', '20'], '--checkpoint_rows is no longer an option: each read unit is committed'),
    (['--num_shards', '4'], '--num_shards is no longer an option: each read unit is its own Parquet part'),
    (['--image_groups', '8'], '--image_groups is no longer an option: image files are cut into units of about'),
    (['--files_per_unit', '0'], '--files_per_unit must be positive'),
    (['--max_image_pixels', '0'], '--max_image_pixels must be positive'),
])
def test_bad_rerun_options_fail_fast(tmp_path, extra, message):
  proc = _job(tmp_path, *extra)
  assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
  assert not (tmp_path / 'out').exists()


def test_unwritable_output_fails_before_any_work(tmp_path):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a folder')
  proc = _job(tmp_path, output=blocker / 'out')
  assert proc.returncode == 2 and 'cannot write to --output' in proc.stderr, proc.stderr[-2000:]
