"""Entry point: validate options, inspect the model, run the job, report."""
import json
import logging
import sys
import time
from typing import List, Optional, Tuple

from pipeline import logs  # first: it quiets TensorFlow before anything imports it

import apache_beam as beam  # pylint: disable=wrong-import-order
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions  # pylint: disable=wrong-import-order

from pipeline import graph, options, summary  # pylint: disable=ungrouped-imports
from transforms import gcs_auth
from transforms.infer import labels as labels_lib
from transforms.infer import model_files, models
from transforms.output import claim, layout
from transforms.read import plan

def inspect_model(config: options.JobConfig) -> models.ModelInfo:
  """Loads the model once here so that a wrong model or labels file fails now, not on every worker."""
  info = model_files.load(config.model).info
  options.check_model_fit(config, info)
  if config.labels:
    labels_lib.load_labels(config.labels, info.num_classes)
  return info


def prepare(argv: List[str]) -> Tuple[beam.Pipeline, options.JobConfig]:
  """Everything before submission: options checked, inputs planned, model inspected, the job built."""
  pipeline_options = PipelineOptions(argv)
  options.apply_local_defaults(argv, pipeline_options)
  gcs_auth.apply(pipeline_options)  # gs:// access for checks and model copies made here, and on workers
  config = options.validate(pipeline_options)
  input_plan = plan.plan_inputs(config.inputs, config.input_format, config.read_settings, config.passthrough_keys)
  logging.info('inputs: %s', ', '.join(f'{pattern} ({fmt})' for pattern, fmt in input_plan.inputs))
  info = inspect_model(config)
  logging.info('model %s: %s, input %s', config.model.location, info.format, info.input_size)
  run_layout = layout.Layout(config.output, layout.new_run_id())
  previous = None
  if not pipeline_options.view_as(TestOptions).dry_run:  # a dry run writes nothing, not even job.json
    job = dict(config.shaping_options(), **{claim.MODEL_DIGEST: model_files.fingerprint(config.model.location)})
    previous = claim.claim(config.output, config.output_mode, job)
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
  logs.configure()
  try:
    report = run(argv)
  except (options.OptionsError, plan.InputError, models.ModelError, claim.OutputError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(report, indent=2, sort_keys=True))
  return 0
