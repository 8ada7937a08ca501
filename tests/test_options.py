"""Bad options fail fast, with a message and exit code 2, before any data is read; --help describes them all;
an option that neither the job nor Beam knows is refused, and every flag our templates and tests pass is known.

The cases run in-process, through the same entry point as the command line (pipeline.run.main); one
subprocess each checks the command line itself for --help and for an unknown option."""
import argparse
import ast
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from benchmarks import limit
from pipeline import command_line, model_options, options, run
from tests import datagen
from transforms.read import image_units

CLASSIFIER = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
FEATURES = str(datagen.HUB_DIRS[datagen.HUB_FEATURES])
GROUPS = ('inputs', 'model', 'output', 'reliability', 'analysis')


def _fails(tmp_path, capsys, args) -> str:
  """Runs the job in-process with --output under tmp_path; asserts exit code 2 and that nothing was written;
  returns stderr."""
  assert run.main(['--output', str(tmp_path / 'out')] + args) == 2
  assert not (tmp_path / 'out').exists()  # nothing started
  return capsys.readouterr().err


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
    (['--input', '{photos}', '--model', CLASSIFIER, '--model_copies', '0'], '--model_copies must be positive, not 0'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--reads_in_flight', '0'],
     '--reads_in_flight must be positive, not 0'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--read_bytes_in_flight', '-1'],
     '--read_bytes_in_flight must be positive, not -1'),
    (['--input', '{photos}', '--model', CLASSIFIER, '--tf_runtime', 'onnx'],
     "--tf_runtime must be one of tensorflow, tflite, not 'onnx'"),
    (['--input', '{photos}'], '--model is required'),
    (['--input', '{photos}', '--model', '/no/such/model'], 'model not found'),
    (['--input', '{photos}', '--model', str(datagen.PHOTOS)], 'not a model'),
    (['--input', '{photos}', '--model', FEATURES, '--task', 'embed', '--analyze_embeddings', '--pca_dims', '513'],
     '--pca_dims 513 is larger than the embedding size, 512'),  # checked once the model is loaded
])
def test_bad_option_fails_fast(tmp_path, capsys, args, message):
  args = [a.replace('{photos}', f'{datagen.PHOTOS}/*') for a in args]
  assert message in _fails(tmp_path, capsys, args)


def test_labels_count_mismatch_fails_before_reading(tmp_path, capsys):
  labels = tmp_path / 'labels.txt'
  labels.write_text('\n'.join(f'class {i}' for i in range(10)))
  err = _fails(tmp_path, capsys, ['--input', f'{datagen.PHOTOS}/*', '--model', CLASSIFIER, '--labels_file',
                                  str(labels)])
  assert 'has 10 names, but the model has 1001 classes' in err


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
    # Options that neither the job nor Beam knows, and values argparse refuses: before anything else.
    (['--top-k', '3'], 'unknown option --top-k (did you mean --top_k?)'),
    (['--bogus_option', '3'], 'unknown option --bogus_option'),
    (['--labels-file=x.txt', '--direct-num-workers', '2'],
     'unknown options --labels-file (did you mean --labels_file?), --direct-num-workers (did you mean '
     '--direct_num_workers?)'),
    (['--Top_K', '3'], 'did you mean --top_k?'),
    (['--top_k', 'x'], "argument --top_k: invalid int value: 'x'"),
    (['--whiten=maybe'], "argument --whiten: expected true or false, not 'maybe'"),
    (['--direct_num_workers', 'two'], "argument --direct_num_workers: invalid int value: 'two'"),
    (['more.jpg'], "unexpected argument 'more.jpg'"),  # an unquoted glob the shell expanded
])
def test_bad_input_option_fails_fast_in_process(tmp_path, capsys, args, message):
  """The input, analysis and unknown options' checks, reported before the (missing) model is even looked at."""
  argv = ['--input', f'{datagen.PHOTOS}/*', '--model', '/no/such/model'] + args
  err = _fails(tmp_path, capsys, argv)
  assert message in err
  assert 'model not found' not in err


def test_unknown_option_message_names_what_to_do(tmp_path, capsys):
  err = _fails(tmp_path, capsys, ['--input', f'{datagen.PHOTOS}/*', '--model', CLASSIFIER, '--bogus_option', '3'])
  assert err.strip() == ('error: unknown option --bogus_option: neither python -m pipeline nor Beam knows it '
                         '(python -m pipeline --help lists the options)')


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
    ([], (64, 64)),  # fixed batches: BatchElements' size tuning cost CPU per image (docs/benchmarks.md)
    (['--max_batch_size', '16'], (16, 16)),
    (['--min_batch_size', '8'], (8, 64)),  # a range: BatchElements tunes within it
])
def test_batch_sizes_are_fixed_unless_a_range_is_given(tmp_path, args, sizes):
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model', FEATURES] + args
  config = options.validate(PipelineOptions(argv))
  assert (config.min_batch_size, config.max_batch_size) == sizes
  if not args:
    assert limit.BATCH == config.max_batch_size  # the benchmark's limit batches as the job does by default


def test_defaults_are_the_named_ones(tmp_path):
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model', FEATURES]
  config = options.validate(PipelineOptions(argv))
  assert config.top_k == model_options.DEFAULT_TOP_K == 5
  assert config.max_batch_size == options.DEFAULT_MAX_BATCH_SIZE == 64
  assert config.resize_method == model_options.DEFAULT_RESIZE_METHOD == 'bilinear'
  assert config.progress_seconds == options.DEFAULT_PROGRESS_SECONDS
  assert config.files_per_unit == image_units.DEFAULT_FILES_PER_UNIT == 1000
  settings = config.read_settings
  assert (settings.reads_in_flight, settings.read_bytes_in_flight, settings.anonymous) == (64, 8 << 20, False)


def _job_option_names() -> list:
  parser = argparse.ArgumentParser()
  options.ImageOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  actions = parser._actions  # pylint: disable=protected-access
  return [s for a in actions for s in a.option_strings if s.startswith('--') and s != '--help']


def test_help_in_process_shows_every_option_with_its_default(capsys):
  assert run.main(['-h']) == 0
  out = capsys.readouterr().out
  assert run.main(['--input', 'x', '--help']) == 0  # wherever it is, and before any check
  assert capsys.readouterr().out == out
  for name in _job_option_names():
    assert re.search(rf'^  {name}\b', out, re.M), name
  for title in GROUPS:
    assert re.search(rf'^{title}:$', out, re.M), title
  assert out.index('\ninputs:') < out.index('\nmodel:') < out.index('\noutput:') < out.index('\nreliability:') \
      < out.index('\nanalysis:')
  flat = ' '.join(out.split())
  assert '--top_k TOP_K Classes kept per image, best first. (default: 5)' in flat
  assert '(default: 64)' in flat and '(default: bilinear)' in flat and '(default: 1000)' in flat


def test_command_line_help_lists_options_and_points_to_beam():
  proc = subprocess.run([sys.executable, '-m', 'pipeline', '--help'], capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = proc.stdout
  assert out.startswith('usage: python -m pipeline --input INPUT --output OUTPUT --model MODEL')
  for name in ('--input', '--top_k', '--analyze_embeddings', '--resume', '--output', '--model'):
    assert re.search(rf'^  {name}\b', out, re.M), name
  for title in GROUPS:
    assert f'\n{title}:\n' in out, title
  for beam in ('--runner', '--direct_num_workers', '--temp_location', 'https://beam.apache.org/documentation/runners/',
               'apache_beam.options.pipeline_options'):
    assert beam in out, beam


def test_command_line_refuses_an_unknown_option(tmp_path):
  proc = subprocess.run([sys.executable, '-m', 'pipeline', '--input', f'{datagen.PHOTOS}/*', '--output',
                         str(tmp_path / 'out'), '--model', CLASSIFIER, '--top-k', '3'],
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'unknown option --top-k (did you mean --top_k?)' in proc.stderr
  assert not (tmp_path / 'out').exists()


# The flags our templates and tests pass must stay known: they are read from the templates themselves.
def _flink_sh_flags() -> list:
  """What `flink.sh flags` prints (tests/flink.py and tests/test_flink.py pass it), run with a cache that holds
  NothingToStage's jar (flink.sh compiles it when it installs), so that the flag naming it is printed too."""
  with tempfile.TemporaryDirectory() as cache:
    (pathlib.Path(cache) / 'jars').mkdir()
    (pathlib.Path(cache) / 'jars' / 'nothing-to-stage-job-server.jar').touch()
    printed = subprocess.run(['bash', str(datagen.ROOT / 'templates' / 'flink' / 'flink.sh'), 'flags'], check=True,
                             env=dict(os.environ, FLINK_CACHE_DIR=cache), capture_output=True, text=True).stdout
  return shlex.split(printed)


def _readme_commands(path) -> list:
  """The arguments of each `python -m pipeline` command in a README, with its variables and placeholders set."""
  lines = path.read_text().replace('\\\n', ' ').splitlines()
  commands = []
  for line in lines:
    if re.match(r'\s*(\S*/)?python3? -m pipeline ', line):
      line = re.sub(r'\$\([^)]*\)', '', line)  # $(bash templates/flink/flink.sh flags): checked on its own
      line = re.sub(r'(?<=[= ])[A-Z][A-Z_]+(?=\s|$)', '2', line)  # placeholders such as TOTAL_SLOTS
      commands.append(shlex.split(re.sub(r'\$\{?\w+\}?', '2', line.split('-m pipeline', 1)[1])))
  assert commands, f'no python -m pipeline command in {path}'
  return commands


def _airflow_flags() -> list:
  """What the Beam DAG passes on the FlinkRunner: its job options and default Flink options, as Airflow's Beam
  hook turns them into flags (True: a bare switch)."""
  tree = ast.parse((datagen.ROOT / 'templates' / 'airflow' / 'image_inference_dags.py').read_text())
  flink_options = next(ast.literal_eval(node.args[1]) for node in ast.walk(tree)
                       if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == '_env'
                       and ast.literal_eval(node.args[0]) == 'FLINK_OPTIONS')
  passed = dict(flink_options, flink_master='localhost:8081', input='/in/*', output='/out', model='/m',
                task='both', labels_file='/l.txt', resume=True, direct_num_workers=2)
  return (['--runner=FlinkRunner'] + [f'--{k}' if v is True else f'--{k}={v}' for k, v in passed.items()]
          + ['--labels=airflow-version=v3-0-0'])  # the operator labels every run


def _dataflow_template_flags() -> list:
  """The Flex Template's parameters as its launcher passes them (--name=value), and the Beam ones its README and
  the Airflow DAG add as parameters."""
  parameters = json.loads((datagen.ROOT / 'templates' / 'dataflow' / 'metadata.json').read_text())['parameters']
  flags = [f'--{p["name"]}={p.get("defaultValue", "1")}' for p in parameters]
  readme = (datagen.ROOT / 'templates' / 'dataflow' / 'README.md').read_text()
  extra = set(re.findall(r'--parameters \S*?(\b\w+)=', readme)) | {'sdk_container_image'}
  return flags + [f'--{name}=2' for name in sorted(extra)]


@pytest.mark.parametrize('source, flags', [
    ('flink.sh flags', _flink_sh_flags()),
    ('airflow beam DAG', _airflow_flags()),
    ('dataflow template', _dataflow_template_flags()),
    ('tests/test_dataflow_template.py', ['--runner=DataflowRunner', '--project=placeholder-project',
                                         '--region=us-central1', '--temp_location=gs://placeholder-bucket/tmp',
                                         '--dry_run=True', f'--setup_file={datagen.ROOT / "setup.py"}']),
    ('portable runners', ['--runner=PortableRunner', '--job_endpoint=localhost:8099', '--sdk_worker_parallelism=2',
                          '--environment_type=LOOPBACK', '--sdk_location=container', '--no_auth',
                          '--direct_running_mode=multi_processing', '--experiments=use_runner_v2',
                          '--no_use_public_ips']),
] + [(f'templates/{kind}/README.md #{i}', args) for kind in ('flink', 'dataflow')
     for i, args in enumerate(_readme_commands(datagen.ROOT / 'templates' / kind / 'README.md'))])
def test_flags_our_templates_and_tests_pass_are_known(source, flags):
  assert flags, source
  command_line.check_known(flags)  # raises OptionsError on an unknown option or a value its parser refuses


def test_template_flags_were_found():
  """The readers above find what they look for, so the check cannot pass on nothing."""
  assert {f.split('=')[0] for f in _flink_sh_flags()} >= {'--runner', '--flink_master', '--environment_type',
                                                           '--environment_option', '--job_endpoint',
                                                           '--pipeline_resources_detector_factory_class'}
  assert {f.split('=')[0] for f in _airflow_flags()} >= {'--environment_type', '--environment_config',
                                                          '--flink_version', '--resume'}
  assert {f.split('=')[0] for f in _dataflow_template_flags()} >= {'--input', '--top_k', '--sdk_container_image',
                                                                   '--dataflow_service_options'}
  dataflow_readme = {a for args in _readme_commands(datagen.ROOT / 'templates' / 'dataflow' / 'README.md')
                     for a in args}
  assert {'--setup_file', '--sdk_container_image', '--runner'} <= dataflow_readme
