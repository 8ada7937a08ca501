"""Entry point: validate options, inspect the model, claim the output, run the job, report."""
import argparse
import dataclasses
import hashlib
import importlib
import json
import logging
import sys
import threading
import time
from typing import List, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, TestOptions
from apache_beam.runners.runner import PipelineState

from pipeline import command_line, graph, job_end, live_progress, local_defaults, logs, options, stopping, summary
from pipeline.launcher_options import LauncherOptions, flag
from transforms import gcs_auth
from transforms.infer import labels as labels_lib
from transforms.infer import info_cache, model_files, models
from transforms.output import claim, files, keep_lease, layout, lease, vectors
from transforms.read import outcomes, plan


def inspect_model(config: options.JobConfig) -> models.ModelInfo:
  """Loads the model once here so that a wrong model, labels file or option that needs the model fails now,
  before any data is read, not on every worker; a check that passed before for the same model files and
  options is read back instead (transforms/infer/info_cache.py)."""
  info = info_cache.model_info(config.model)
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
      'image_column': settings.image_column, 'id_column': settings.id_column, 'allow_http': settings.allow_http,
      'passthrough_keys': [list(key) for key in config.passthrough_keys],
      'model': spec.location, 'task': spec.task, 'image_size': spec.image_size,
      'classes_output': spec.classes_output, 'embedding_output': spec.embedding_output,
      'input_range': list(spec.input_range) if spec.input_range else None,
      'labels_file': config.labels, 'top_k': config.top_k, 'resize_method': config.resize_method,
      'max_image_pixels': config.max_image_pixels, 'max_input_bytes': config.read_settings.max_input_bytes,
      'files_per_unit': config.files_per_unit,  # names the read units (claim.UNIT_NAMING)
      'analyze_embeddings': analysis is not None,
      'pca_dims': analysis.pca_dims if analysis else None,
      'whiten': analysis.whiten if analysis else None,
      'embedding_dtype': config.embedding_dtype, 'normalize_embeddings': config.normalize_embeddings,
      'schema_version': vectors.SCHEMA_VERSION,  # an output of another version is not continued
  }


LABELS_DIGEST = 'labels_sha256'  # in job.json, beside the model's digest: a relabelled run must not mix labels


def labels_fingerprint(path: Optional[str]) -> Optional[str]:
  """SHA-256 of the labels file's bytes, read through Beam's filesystems (local or gs://); None without one."""
  if not path:
    return None
  digest = hashlib.sha256()
  with FileSystems.open(path, compression_type='uncompressed') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def job_record(config: options.JobConfig) -> dict:
  """What the claim on --output writes to job.json and a resumed run compares: options, model and labels digests."""
  return dict(row_shaping_options(config), **{claim.MODEL_DIGEST: model_files.fingerprint(config.model.location),
                                              LABELS_DIGEST: labels_fingerprint(config.labels)})


def check_labels_unchanged(output: str, job: dict) -> None:
  """--resume over rows labelled from other class names would mix labels: refused, as a changed model is."""
  previous = files.read_json(files.join(output, layout.JOB_FILE)) or {}
  if not previous or previous.get('labels_file') != job.get('labels_file'):
    return  # a new output, or another labels path: the claim's comparison of the options says so
  if previous.get(LABELS_DIGEST) != job.get(LABELS_DIGEST):
    why = 'its content differs' if LABELS_DIGEST in previous else 'its content was not recorded then'
    raise claim.OutputError(f'--resume: the labels changed: the labels file {job.get("labels_file")} is not the '
                            f'one that labelled {output} ({why}); pass --overwrite to start over with it')


def prepare(argv: List[str]) -> Tuple[beam.Pipeline, options.JobConfig]:
  """Everything before submission: options checked, inputs planned, model inspected, the job built."""
  command_line.check_known(argv)  # Beam would drop an unknown option with a warning: a typo would go unnoticed
  pipeline_options = PipelineOptions(argv)
  local_defaults.apply(argv, pipeline_options)
  gcs_auth.apply(pipeline_options)  # gs:// access for checks and model copies made here, and on workers
  config = options.validate(pipeline_options)
  input_plan = options.plan_inputs(config)
  logging.info('inputs: %s', ', '.join(f'{pattern} ({fmt})' for pattern, fmt in input_plan.inputs))
  # the keys the plan found in the records (a TFDS layout) go into job.json, as given ones do
  config = dataclasses.replace(config, read_settings=dataclasses.replace(
      config.read_settings, image_key=input_plan.settings.image_key, id_key=input_plan.settings.id_key))
  info = inspect_model(config)
  logging.info('model %s: %s, input %s', config.model.location, info.format, info.input_size)
  run_layout = layout.Layout(config.output, layout.new_run_id())
  claimed = False
  # A resume only where an earlier run left something: a first run under --resume (every Airflow run) is not one.
  resuming = config.output_mode == claim.RESUME and bool(claim.used(config.output))
  if not pipeline_options.view_as(TestOptions).dry_run:  # a dry run writes nothing, not even job.json
    record = job_record(config)
    if config.output_mode == claim.RESUME:
      check_labels_unchanged(config.output, record)
    claim.claim(config.output, config.output_mode, record, run_layout.run_id)  # takes the lease
    claimed = True
    run_layout = run_layout._replace(earlier_runs=layout.run_folders(config.output))  # the commit deletes theirs
  p = beam.Pipeline(options=pipeline_options)
  try:
    graph.build(p, config, info, input_plan, run_layout, resuming)
  except BaseException:
    if claimed:  # the lease is this run's
      lease.release(config.output, run_layout.run_id)
    raise
  p.run_id = run_layout.run_id  # for run(): the lease's holder
  p.input_plan = input_plan  # for run(): the live progress line's total
  return p, config


def run(argv: Optional[List[str]] = None) -> dict:
  """Runs the job to completion and returns its summary; raises OptionsError/ModelError on bad input."""
  p, config = prepare(list(sys.argv[1:] if argv is None else argv))
  start = time.monotonic()
  if p.options.view_as(TestOptions).dry_run:  # translated for the runner, nothing submitted
    p.run()
    return {'dry_run': True, 'runner': type(p.runner).__name__}
  ended = True
  flink_job = live_progress.flink_job(p)  # named before it is submitted, to be found on the cluster
  if p.options.view_as(LauncherOptions).report:
    threading.Thread(target=_import_report, name='import-report', daemon=True).start()
  try:
    # SIGTERM, SIGINT: the job is stopped and the output left resumable (pipeline/stopping.py)
    with keep_lease.Heartbeat(config.output, p.run_id), stopping.on_signals(config.output) as watch, \
        live_progress.shown(p, p.input_plan.inputs, config.progress_seconds):  # one line for all workers
      result = watch.result = p.run()
      flink_counters = job_end.wait(result, flink_job, outcomes.WORKERS_NAMESPACE)
      # not when a template launch returns at once; Flink's word is enough (job_end.py)
      ended = flink_counters is not None or PipelineState.is_terminal(result.state)
  finally:
    if ended:  # success or failure; the commit step released it already after a success
      lease.release(config.output, p.run_id)
  counted = summary.counters(result) if flink_counters is None else flink_counters
  report = summary.complete(config.output, counted, time.monotonic() - start)
  with lease.retaken(config.output, p.run_id) as ours:  # no write once another run holds the output
    if ours:
      if config.analysis:
        from transforms.analyze import embeddings  # pylint: disable=import-outside-toplevel  # tf.Transform
        analysis = config.analysis
        report['embedding_analysis'] = embeddings.finish(config.output, analysis.pca_dims, analysis.whiten)
      summary.write_summary(config.output, report)
      if ended and p.options.view_as(LauncherOptions).report:
        write_run_report(config.output)
  return report


def _import_report() -> None:
  """The run report's modules (matplotlib, about 0.5 s of CPU) imported while the job runs, not after it ends."""
  try:
    importlib.import_module('pipeline.report')
  except Exception:  # pylint: disable=broad-except  # write_run_report imports it again and says what failed
    pass


def write_run_report(output: str) -> None:
  """OUTPUT/report.html (--report); the run succeeded whatever happens here, so a failure is only logged."""
  from pipeline import report as run_report  # pylint: disable=import-outside-toplevel  # matplotlib when asked
  try:
    logging.info('run report written to %s', run_report.write_report(output))
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('the run report was not written (%s: %s); python -m pipeline.report %s tries again',
                    type(e).__name__, e, output)


def wants_estimate(argv: List[str]) -> bool:
  """--estimate (or --estimate=true): python -m pipeline.estimate instead; a bad value is the job's to refuse."""
  for arg in argv:
    name, _, value = arg.partition('=')
    if name == '--estimate':
      try:
        return flag(value) if value else True
      except argparse.ArgumentTypeError:
        return False
  return False


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if command_line.wants_help(argv):
    print(command_line.job_help(), end='')
    return 0
  if wants_estimate(argv):
    from pipeline import estimate  # pylint: disable=import-outside-toplevel
    return estimate.main(argv)
  logs.configure()
  models.exit_without_final_collection()
  try:
    report = run(argv)
  except (options.OptionsError, plan.InputError, models.ModelError, claim.OutputError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except stopping.Stopped as e:
    print(f'error: {e}', file=sys.stderr)
    return e.exit_code
  except Exception as e:  # pylint: disable=broad-except
    if not files.disk_full(e):
      raise
    where = next((line.strip() for line in str(e).splitlines() if 'No space left' in line), '')[:500]
    print(f'error: the disk is full (No space left on device) while writing, the output is incomplete: '
          f'free space, then run the same command with --resume to continue ({where})', file=sys.stderr)
    return 1
  print(json.dumps(report, indent=2, sort_keys=True))
  return 0
