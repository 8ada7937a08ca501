"""The Dataflow Flex Template: its metadata agrees with our options, the job translates for Dataflow
offline with everything picklable, and the sdist that workers install holds our packages."""
import argparse
import json
import pathlib
import re
import tarfile

import pytest
import yaml
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline import options, run
from tests import datagen
from transforms import decode
from transforms import format as format_rows
from transforms.infer import handler, models
from transforms.output import vectors, write_units
from transforms.read import image_files, units
from transforms.read.formats import detect
from transforms.read.settings import COMPRESSIONS

TEMPLATE = datagen.ROOT / 'templates' / 'dataflow'
CLASSIFIER = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
# Placeholders only: a dry run builds the job request without sending it or touching GCS.
DATAFLOW = ['--runner=DataflowRunner', '--project=placeholder-project', '--region=us-central1',
            '--temp_location=gs://placeholder-bucket/tmp', '--dry_run=True',
            f'--setup_file={datagen.ROOT / "setup.py"}']


def _our_options() -> dict:
  """Every option ImageOptions defines, by name, from its own parser: new options show up here."""
  parser = argparse.ArgumentParser()
  options.ImageOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  return {a.dest: a for a in parser._actions if a.dest != 'help'}  # pylint: disable=protected-access


def _parameters() -> dict:
  return {p['name']: p for p in json.loads((TEMPLATE / 'metadata.json').read_text())['parameters']}


def test_metadata_has_every_option_and_no_stale_one():
  ours, template = set(_our_options()), set(_parameters())
  assert not ours - template, f'options missing from metadata.json: {sorted(ours - template)}'
  assert not template - ours, f'metadata.json parameters that are no option: {sorted(template - ours)}'


@pytest.mark.parametrize('name', sorted(_our_options()))
def test_parameter_is_described_and_its_default_agrees(name):
  action, parameter = _our_options()[name], _parameters()[name]
  assert parameter['label'].strip() and parameter['helpText'].strip()
  assert isinstance(parameter['isOptional'], bool)
  patterns = [re.compile(r) for r in parameter.get('regexes', [])]
  assert patterns, f'{name}: no regex to check values at launch'
  if action.default is None:
    assert 'defaultValue' not in parameter
  else:
    convert = action.type or str
    assert convert(parameter['defaultValue']) == action.default
    assert all(p.fullmatch(str(action.default)) for p in patterns)


@pytest.mark.parametrize('name, allowed', [('task', models.TASKS), ('tf_runtime', models.TF_RUNTIMES),
                                           ('resize_method', decode.RESIZE_METHODS),
                                           ('input_format', (detect.AUTO,) + detect.FORMATS),
                                           ('compression', COMPRESSIONS), ('embedding_dtype', vectors.DTYPES)])
def test_choices_regex_accepts_exactly_the_allowed_values(name, allowed):
  pattern = re.compile(_parameters()[name]['regexes'][0])
  assert all(pattern.fullmatch(value) for value in allowed)
  assert not pattern.fullmatch('nonsense') and not pattern.fullmatch('')


def test_required_parameters_are_exactly_what_validation_requires(tmp_path):
  values = {'input': f'{datagen.PHOTOS}/*', 'output': str(tmp_path / 'out'), 'model': CLASSIFIER}
  required = sorted(n for n, p in _parameters().items() if not p['isOptional'])
  assert set(required) <= set(values), f'a test value is needed for required parameter(s) {required}'
  args = [f'--{n}={values[n]}' for n in required]
  options.validate(PipelineOptions(args))  # the required ones alone make a valid job
  for name in required:
    with pytest.raises(options.OptionsError, match=f'--{name} is required'):
      options.validate(PipelineOptions([a for a in args if not a.startswith(f'--{name}=')]))


def _requirements(path) -> set:
  lines = (line.split('#', 1)[0].strip() for line in path.read_text().splitlines())
  return {line for line in lines if line}


def test_template_pins_the_same_versions_as_the_project():
  assert _requirements(TEMPLATE / 'requirements.txt') == _requirements(datagen.ROOT / 'requirements.txt')


def _project_file(image_path: str, copies) -> pathlib.Path:
  """The project file a COPY line put at image_path."""
  for source, dest in copies:
    if image_path == dest:
      return datagen.ROOT / source
    if dest.endswith('/') and image_path.startswith(dest):
      return datagen.ROOT / source / image_path[len(dest):]
  raise AssertionError(f'{image_path} is not copied into the image')


def test_dockerfile_uses_the_python311_launcher_and_points_at_real_files():
  dockerfile = (TEMPLATE / 'Dockerfile').read_text()
  assert re.search(r'^FROM gcr\.io/dataflow-templates-base/python311-template-launcher-base\b', dockerfile, re.M)
  env = dict(re.findall(r'^ENV (FLEX_TEMPLATE_PYTHON_\w+)=(\S+)', dockerfile, re.M))
  assert env.keys() == {'FLEX_TEMPLATE_PYTHON_PY_FILE', 'FLEX_TEMPLATE_PYTHON_SETUP_FILE',
                        'FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE'}
  copies = re.findall(r'^COPY (\S+) (\S+)$', dockerfile, re.M)
  assert _project_file(env['FLEX_TEMPLATE_PYTHON_PY_FILE'], copies) == datagen.ROOT / 'pipeline' / '__main__.py'
  assert _project_file(env['FLEX_TEMPLATE_PYTHON_SETUP_FILE'], copies) == datagen.ROOT / 'setup.py'
  assert _project_file(env['FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE'], copies) == TEMPLATE / 'requirements.txt'
  for source, _ in copies:
    assert (datagen.ROOT / source).exists(), source


def test_worker_image_matches_the_pinned_beam_and_cloud_build_builds_both_images():
  beam_pin = next(r for r in _requirements(TEMPLATE / 'requirements.txt') if r.startswith('apache-beam'))
  worker = (TEMPLATE / 'worker.Dockerfile').read_text()
  assert re.search(r'^FROM apache/beam_python3\.11_sdk:(\S+)$', worker, re.M).group(1) == beam_pin.split('==')[1]
  for source, _ in re.findall(r'^COPY (\S+) (\S+)$', worker, re.M):
    assert (datagen.ROOT / source).exists(), source
  build = yaml.safe_load((TEMPLATE / 'cloudbuild.yaml').read_text())
  dockerfiles = {step['args'][step['args'].index('-f') + 1] for step in build['steps']}
  assert dockerfiles == {'templates/dataflow/Dockerfile', 'templates/dataflow/worker.Dockerfile'}


@pytest.fixture(scope='module', name='translated')
def translated_fixture(tmp_path_factory):
  """The job translated by DataflowRunner, offline: its portable pipeline proto."""
  args = ['--input', f'{datagen.PHOTOS}/*', '--output', 'gs://placeholder-bucket/out', '--model', CLASSIFIER,
          '--labels_file', str(datagen.LABELS), '--task', 'both'] + DATAFLOW
  p, _ = run.prepare(args)
  return p.run().job.proto_pipeline


def test_entry_point_dry_run_submits_nothing(tmp_path):
  report = run.run(['--input', f'{datagen.PHOTOS}/*', '--output', 'gs://placeholder-bucket/out', '--model',
                    CLASSIFIER] + DATAFLOW)
  assert report == {'dry_run': True, 'runner': 'DataflowRunner'}


def test_translated_dofns_and_model_handler_unpickle(translated):
  fns = []
  for transform in translated.components.transforms.values():
    if transform.spec.urn == common_urns.primitives.PAR_DO.urn:
      payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
      fns.append(pickler.loads(payload.do_fn.payload)[0])
  kinds = {type(fn) for fn in fns}
  assert {units.ReadUnits, decode.DecodeImages, format_rows.FormatRows, write_units.WriteUnits} <= kinds
  readers = next(fn for fn in fns if isinstance(fn, units.ReadUnits))._readers  # pylint: disable=protected-access
  assert isinstance(readers['images'], image_files._ReadFile)  # the reader of image files
  handlers = [fn._model_handler for fn in fns if hasattr(fn, '_model_handler')]  # pylint: disable=protected-access
  assert len(handlers) == 1 and isinstance(handlers[0], handler.ImageModelHandler)
  model = handlers[0].load_model()  # what each Dataflow worker does with its copy
  assert model.info.num_classes == 1001 and model.info.embedding_dim == 512


def test_workers_get_an_sdist_with_our_packages(translated):
  staged = {}
  for env in translated.components.environments.values():
    for dep in env.dependencies:
      if dep.type_urn == common_urns.artifact_types.FILE.urn:
        role = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload)
        staged[role.staged_name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
  assert 'workflow.tar.gz' in staged, f'no sdist staged for workers: {sorted(staged)}'
  with tarfile.open(staged['workflow.tar.gz']) as sdist:
    members = {m.name.split('/', 1)[1]: m for m in sdist.getmembers() if '/' in m.name}
    ours = {str(p.relative_to(datagen.ROOT)) for package in ('pipeline', 'transforms')
            for p in (datagen.ROOT / package).rglob('*.py')}
    assert ours <= set(members), f'missing from the sdist: {sorted(ours - set(members))}'
    assert 'setup.py' in members
    top_level = sdist.extractfile(members['beam_image_inference.egg-info/top_level.txt']).read().decode()
  assert set(top_level.split()) == {'pipeline', 'transforms'}  # what a worker's pip install puts on its path
