"""--model_copies: the model shared across worker processes through Beam's proxies gives the default's rows."""
import pytest

from tests import checks, datagen

MODEL = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])


def _job(tmp_path, run_job, name, extra, runner):
  args = ['--input', f'{tmp_path / "images"},{datagen.PHOTOS}', '--model', MODEL, '--task', 'both',
          '--labels_file', str(datagen.LABELS), '--max_batch_size', '8'] + extra
  return run_job(tmp_path / name, args, runner)


@pytest.mark.parametrize('runner', [
    pytest.param(['--direct_running_mode=in_memory', '--direct_num_workers=1'], id='in_process'),
    pytest.param(['--direct_running_mode=multi_processing', '--direct_num_workers=2'], id='two_workers',
                 marks=pytest.mark.full),
])
def test_shared_model_gives_the_default_rows(tmp_path, run_job, monkeypatch, runner):
  datagen.make_jpegs(tmp_path / 'images', 20)
  default = _job(tmp_path, run_job, 'default', [], runner)
  shared_tmp = tmp_path / 'tmp'  # where Beam's multi_process_shared puts its servers' address files
  shared_tmp.mkdir()
  monkeypatch.setenv('TMPDIR', str(shared_tmp))  # read by the workers' Beam at import
  shared = _job(tmp_path, run_job, 'shared', ['--model_copies', '1'], runner)
  assert shared.summary['rows_written'] == default.summary['rows_written'] == 26
  checks.assert_same_output(tmp_path / 'shared', tmp_path / 'default')
  if 'multi_processing' in ' '.join(runner):  # one model server for both workers (and its status object)
    assert len([p for p in shared_tmp.glob('*.address') if not p.name.endswith('_model_status.address')]) == 1
