"""Graph assembly: the optional analysis is the only difference it makes, and nothing without it."""
import apache_beam as beam

from pipeline import graph, options
from transforms.infer import models
from transforms.output.layout import Layout
from transforms.read.formats import detect
from transforms.read.plan import InputPlan
from transforms.read.settings import ReadSettings


def _labels(analysis):
  spec = models.ModelSpec('/models/features', models.EMBED)
  config = options.JobConfig(inputs=('/data/*.jpg',), input_format=detect.AUTO, read_settings=ReadSettings(),
                             passthrough_keys=(), output='/out', model=spec, labels=None, top_k=5,
                             resize_method='bilinear', min_batch_size=8, max_batch_size=64,
                             progress_seconds=10.0, analysis=analysis)
  info = models.ModelInfo('tf1_hub', (128, 128), (0.0, 1.0), None, 512)
  p = beam.Pipeline()
  graph.build(p, config, info, InputPlan((('/data/*.jpg', detect.IMAGES),), ReadSettings()),
              Layout('/out', 'run'))
  return {t.unique_name for t in p.to_runner_api().components.transforms.values()}


def test_analysis_adds_its_own_steps_and_changes_nothing_else(tmp_path):
  off = _labels(None)
  on = _labels(options.AnalysisConfig(8, True, str(tmp_path / 'tft_tmp')))
  assert not any('Analyze' in label for label in off)
  assert off < on
  assert all(label.startswith('AnalyzeEmbeddings') for label in on - off)
