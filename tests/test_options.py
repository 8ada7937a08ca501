"""Bad options fail fast, with a message and exit code 2, before any data is read."""
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks import limit
from pipeline import options
from tests import datagen

CLASSIFIER = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
FEATURES = str(datagen.HUB_DIRS[datagen.HUB_FEATURES])


def _run(args, tmp_path):
  return subprocess.run([sys.executable, '-m', 'pipeline', '--output', str(tmp_path / 'out')] + args,
                        capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize('args, message', [
    (['--model', CLASSIFIER], '--input is required'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--task', 'segment'], '--task must be one of'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--top_k', '0'], '--top_k must be at least 1'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--min_batch_size', '9', '--max_batch_size', '4'],
     'need 1 <= --min_batch_size <= --max_batch_size'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--labels_file', '/no/such/labels.txt'],
     '--labels_file not found'),
    (['--input', '/no/such/dir/*.jpg', '--model', CLASSIFIER], '--input matches no files'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--resize_method', 'magic'], '--resize_method must be one of'),
    (['--input', '{photos}'], '--model is required'),
    (['--input', '{photos}', '--model', '/no/such/model'], 'model not found'),
    (['--input', '{photos}', '--model', str(datagen.PHOTOS)], 'not a model'),
    (['--input', '{photos}', '--model', FEATURES, '--task', 'embed', '--analyze_embeddings', '--pca_dims', '513'],
     '--pca_dims 513 is larger than the embedding size, 512'),  # checked once the model is loaded
])
def test_bad_option_fails_fast(tmp_path, args, message):
  args = [a.replace('{photos}', f'{datagen.PHOTOS}/*') for a in args]
  proc = _run(args, tmp_path)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert message in proc.stderr
  assert not (tmp_path / 'out').exists()  # nothing started


def test_labels_count_mismatch_fails_before_reading(tmp_path):
  labels = tmp_path / 'labels.txt'
  labels.write_text('\n'.join(f'class {i}' for i in range(10)))
  proc = _run(['--input', f'{datagen.PHOTOS}/*', '--model', CLASSIFIER, '--labels_file', str(labels)], tmp_path)
  assert proc.returncode == 2
  assert 'has 10 names, but the model has 1001 classes' in proc.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('args, message', [
    (['--input_format', 'zip'], '--input_format must be one of'),
    (['--compression', 'lz4'], '--compression must be one of'),
    (['--passthrough_keys', 'id'], "'id' is already an output column"),
    (['--passthrough_keys', 'label:int'], "unknown type 'int'"),
    (['--passthrough_keys', 'label'], 'not to image files'),
    (['--id_key', 'key'], '--id_key applies to TFRecord inputs only'),
    (['--input', str(datagen.MODELS / 'README.md')], 'cannot tell the format'),
    (['--task', 'classify', '--analyze_embeddings'],
     '--analyze_embeddings needs embeddings: --task embed or both, not classify'),
    (['--pca_dims', '8'], '--pca_dims and --whiten need --analyze_embeddings'),
    (['--whiten'], '--pca_dims and --whiten need --analyze_embeddings'),
    (['--analyze_embeddings', '--pca_dims', '0'], '--pca_dims must be positive, not 0'),
    (['--analyze_embeddings', '--pca_dims', '-3'], '--pca_dims must be positive, not -3'),
    (['--analyze_embeddings', '--whiten', '--passthrough_keys', 'embedding_pca_whitened'],
     "--passthrough_keys embedding_pca_whitened: taken by --analyze_embeddings's columns"),
])
def test_bad_input_option_fails_fast_in_process(tmp_path, capsys, args, message):
  """The input and analysis options' checks, through the same entry point without a process start each."""
  from pipeline import run  # pylint: disable=import-outside-toplevel
  argv = ['--input', f'{datagen.PHOTOS}/*', '--model', '/no/such/model', '--output', str(tmp_path / 'out')] + args
  assert run.main(argv) == 2
  assert message in capsys.readouterr().err  # reported before the (missing) model is even looked at
  assert not (tmp_path / 'out').exists()


def test_analysis_defaults_and_scratch_space(tmp_path):
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model', FEATURES]
  analysis = options.validate(PipelineOptions(argv + ['--analyze_embeddings'])).analysis
  assert (analysis.pca_dims, analysis.whiten) == (options.DEFAULT_PCA_DIMS, False)
  assert analysis.temp_dir.startswith(str(tmp_path / 'out' / 'tft_tmp-'))
  elsewhere = options.validate(PipelineOptions(argv + ['--analyze_embeddings', '--temp_location', '/scratch']))
  assert elsewhere.analysis.temp_dir.startswith('/scratch/tft_tmp-')
  assert options.validate(PipelineOptions(argv)).analysis is None
  # Dataflow's template launcher passes switches with a value.
  templated = options.validate(PipelineOptions(argv + ['--analyze_embeddings=true', '--whiten=true'])).analysis
  assert templated.whiten is True
  switched_off = options.validate(PipelineOptions(argv + ['--analyze_embeddings=false', '--whiten=false']))
  assert switched_off.analysis is None


@pytest.mark.parametrize('args, sizes', [
    ([], (64, 64)),  # fixed batches: BatchElements' size tuning cost CPU per image (BENCHMARKS.md)
    (['--max_batch_size', '16'], (16, 16)),
    (['--min_batch_size', '8'], (8, 64)),  # a range: BatchElements tunes within it
])
def test_batch_sizes_are_fixed_unless_a_range_is_given(tmp_path, args, sizes):
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model', FEATURES] + args
  config = options.validate(PipelineOptions(argv))
  assert (config.min_batch_size, config.max_batch_size) == sizes
  if not args:
    assert limit.BATCH == config.max_batch_size  # the benchmark's limit batches as the job does by default
