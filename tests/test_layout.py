"""The tree shows how the job works: stages as packages, Beam-free pieces importable without Beam, small modules."""
import subprocess
import sys

import pytest

from tests import datagen

# Format, model and analysis code a training job, the packer or a notebook can use without Beam.
BEAM_FREE = ['transforms.elements', 'transforms.read.formats.detect', 'transforms.read.formats.passthrough',
             'transforms.read.formats.tf_example', 'transforms.read.formats.tfrecord',
             'transforms.read.formats.webdataset', 'transforms.read.settings', 'transforms.infer.models',
             'transforms.infer.models.base', 'transforms.infer.models.locate', 'transforms.infer.models.tflite',
             'transforms.analyze.pca', 'transforms.analyze.statistics', 'transforms.output.schema',
             'pipeline.report', 'pipeline.report.__main__']  # the report: readable where Beam is not installed


@pytest.mark.parametrize('module', BEAM_FREE)
def test_beam_free_modules_import_without_beam(module):
  code = f'import sys; sys.modules["apache_beam"] = None; import {module}'  # any Beam import now fails
  proc = subprocess.run([sys.executable, '-c', code], cwd=datagen.ROOT, capture_output=True, text=True,
                        timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]


def _modules(package: str):
  return sorted((datagen.ROOT / package).rglob('*.py'))


def test_no_module_over_300_lines():
  long = {str(p.relative_to(datagen.ROOT)): n for p in _modules('pipeline') + _modules('transforms')
          if (n := len(p.read_text().splitlines())) > 300}
  assert not long, long


def test_stages_are_packages_with_a_docstring():
  transforms = datagen.ROOT / 'transforms'
  assert len(list(transforms.glob('*.py'))) <= 8  # the rest lives in one package per stage
  for package in [p.parent for p in transforms.rglob('__init__.py')]:
    text = (package / '__init__.py').read_text()
    assert text.startswith('"""') and len(text.split('"""')[1].strip()) > 40, package
