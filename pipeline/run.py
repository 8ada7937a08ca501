"""Entry point: validate options, inspect the model, claim the output, run the job, report."""
import json
import logging
import sys
import time
from typing import List, Optional, Tuple

from pipeline import logs

import apache_beam as beam  # pylint: disable=wrong-import-order
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions  # pylint: disable=wrong-import-order

from pipeline import command_line, graph, local_defaults, options, summary  # pylint: disable=ungrouped-imports
from transforms import gcs_auth
from transforms.infer import labels as labels_lib
from transforms.infer import model_files, models
from transforms.output import claim, layout
from transforms.read import plan


def inspect_model(config: options.JobConfig) -> models.ModelInfo:
  """Loads the model once here so that a wrong model, labels file or option that needs the model fails now,
  before any data is read, not on every worker."""
  info = model_files.load(config.model).info
  if config.analysis and info.embedding_dim is not None and config.analysis.pca_dims > info.embedding_dim:
    raise options.OptionsError(f'--pca_dims {config.analysis.pca_dims} is larger than the embedding size, '
                               f'{info.embedding_dim} for {config.model.location}')
  if config.labels:
    labels_lib.load_labels(config.labels, info.num_classes)
  return info


def row_shaping_options(config: options.JobConfig) -> dict:
  """The options that decide what the rows hold, as the job record (job.json) keeps them: --resume continues
  an output only with the same ones (and the same model files)."""
  spec, settings, analysis = config.model, config.read_settings, config.analysis
  return {
      'input': ','.join(config.inputs), 'input_format': config.input_format, 'compression': settings.compression,
      'image_key': settings.image_key, 'id_key': settings.id_key,
      'passthrough_keys': [list(key) for key in config.passthrough_keys],
      'model': spec.location, 'task': spec.task, 'image_size': spec.image_size,
      'classes_output': spec.classes_output, 'embedding_output': spec.embedding_output,
      'input_range': list(spec.input_range) if spec.input_range else None,
      'labels_file': config.labels, 'top_k': config.top_k, 'resize_method': config.resize_method,
      'max_image_pixels': config.max_image_pixels,
      'analyze_embeddings': analysis is not None,
      'pca_dims': analysis.pca_dims if analysis else None,
      'whiten': analysis.whiten if analysis else None,
  }


def job_record(config: options.JobConfig) -> dict:
  """What the claim on --output writes to job.json and a resumed run compares: options and model digest."""
  return dict(row_shaping_options(config), **{claim.MODEL_DIGEST: model_files.fingerprint(config.model.location)})


def prepare(argv: List[str]) -> Tuple[beam.Pipeline, options.JobConfig]:
  """Everything before submission: options checked, inputs planned, model inspected, the job built."""
  command_line.check_known(argv)  # Beam would drop an unknown option with a warning: a typo would go unnoticed
  pipeline_options = PipelineOptions(argv)
  local_defaults.apply(argv, pipeline_options)
  gcs_auth.apply(pipeline_options)  # gs:// access for checks and model copies made here, and on workers
  config = options.validate(pipeline_options)
  input_plan = plan.plan_inputs(config.inputs, config.input_format, config.read_settings, config.passthrough_keys)
  logging.info('inputs: %s', ', '.join(f'{pattern} ({fmt})' for pattern, fmt in input_plan.inputs))
  info = inspect_model(config)
  logging.info('model %s: %s, input %s', config.model.location, info.format, info.input_size)
  run_layout = layout.Layout(config.output, layout.new_run_id())
  previous = None
  if not pipeline_options.view_as(TestOptions).dry_run:  # a dry run writes nothing, not even job.json
    previous = claim.claim(config.output, config.output_mode, job_record(config))
  p = beam.Pipeline(options=pipeline_options)
  graph.build(p, config, info, input_plan, run_layout, previous)
  return p, config


def run(argv: Optional[List[str]] = None) -> dict:
  """Runs the job to completion and returns its summary; raises OptionsError/ModelError on bad input."""
  p, config = prepare(list(sys.argv[1:] if argv is None else argv))
  start = time.monotonic()
  result = p.run()
  if p.options.view_as(TestOptions).dry_run:  # translated for the runner, nothing submitted
    return {'dry_run': True, 'runner': type(p.runner).__name__}
  result.wait_until_finish()
  report = summary.complete(config.output, result, time.monotonic() - start)
  if config.analysis:
    from transforms.analyze import embeddings  # pylint: disable=import-outside-toplevel  # tf.Transform if asked
    report['embedding_analysis'] = embeddings.finish(config.output, config.analysis.pca_dims, config.analysis.whiten,
                                                  config.analysis.temp_dir)
  summary.write_summary(config.output, report)
  return report


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if command_line.wants_help(argv):
    print(command_line.job_help(), end='')
    return 0
  logs.configure()
  try:
    report = run(argv)
  except (options.OptionsError, plan.InputError, models.ModelError, claim.OutputError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(report, indent=2, sort_keys=True))
  return 0
