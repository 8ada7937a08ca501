"""Worker start-up: the model starts loading as soon as an SDK worker process starts, beside Beam's first stages.

Otherwise a worker loads the model only when the first bundle of the infer
stage sets RunInference up, after it has connected to the runner and run the
job's earlier stages (planning, the join that skips committed units, the
reshuffle): with TensorFlow 3-4 s of importing and loading that nothing
overlaps. The launcher names this module in Beam's --beam_plugins, which every
SDK worker imports before it connects to the runner (on every runner), and
passes the model's spec in an experiment; importing the module in a worker
starts a thread that loads that model. ImageModelHandler.load_model takes it
when its own spec is the same and loads its own otherwise (a preload that
failed is not used: the handler's own load raises the error where Beam expects it).
"""
import base64
import dataclasses
import json
import logging
import os
import threading
from typing import Any, Dict, Optional, Sequence

from transforms.infer import model_files, models

EXPERIMENT = 'image_inference_preload_model='  # + the spec as urlsafe base64 JSON (experiments are split at ',')
_WORKER_ENV = 'CONTROL_API_SERVICE_DESCRIPTOR'  # set in SDK worker processes only, by every runner

_lock = threading.Lock()
_pending: Optional[tuple] = None  # (spec, thread, result) until a handler takes it


def experiment(spec: models.ModelSpec) -> str:
  """The experiment that tells workers which model to preload."""
  encoded = base64.urlsafe_b64encode(json.dumps(dataclasses.asdict(spec)).encode('utf-8')).decode('ascii')
  return EXPERIMENT + encoded


def spec_from(experiments: Optional[Sequence[str]]) -> Optional[models.ModelSpec]:
  for value in experiments or ():
    if value.startswith(EXPERIMENT):
      fields = json.loads(base64.urlsafe_b64decode(value[len(EXPERIMENT):].encode('ascii')))
      if fields.get('input_range') is not None:
        fields['input_range'] = tuple(fields['input_range'])
      return models.ModelSpec(**fields)
  return None


def start(spec: models.ModelSpec) -> None:
  """Starts loading `spec` on a daemon thread (once per process)."""
  global _pending  # pylint: disable=global-statement
  result: Dict[str, Any] = {}

  def load():
    try:
      result['model'] = model_files.load(spec)
    except Exception as e:  # pylint: disable=broad-except  # the handler's own load raises it again
      logging.debug('model preload failed: %s', e)

  with _lock:
    if _pending is not None:
      return
    thread = threading.Thread(target=load, name='preload-model', daemon=True)
    _pending = (spec, thread, result)
  thread.start()


def take(spec: models.ModelSpec) -> Optional[models.ImageModel]:
  """The preloaded model if one was started for this very spec and not taken yet, else None."""
  global _pending  # pylint: disable=global-statement
  with _lock:
    pending, _pending = _pending, None
  if pending is None:
    return None
  preloaded_spec, thread, result = pending
  thread.join()  # even when not used: two loads at once would both redirect descriptor 2 (native_logs.quiet)
  return result.get('model') if preloaded_spec == spec else None


def _experiments_from_environment() -> Optional[Sequence[str]]:
  """The job's experiments, from the options the runner gave this worker process (as Beam's worker reads them)."""
  from apache_beam.runners.worker import sdk_worker_main  # pylint: disable=import-outside-toplevel
  text = os.environ.get('PIPELINE_OPTIONS')
  if 'PIPELINE_OPTIONS_FILE' in os.environ:
    with open(os.environ['PIPELINE_OPTIONS_FILE'], encoding='utf-8') as f:
      text = f.read()
  return sdk_worker_main._load_pipeline_options(text).get('experiments')  # pylint: disable=protected-access


def _start_in_worker() -> None:
  if _WORKER_ENV not in os.environ:
    return  # imported by the launcher, or by a worker running in its process: nothing to start
  try:
    spec = spec_from(_experiments_from_environment())
  except Exception as e:  # pylint: disable=broad-except  # only a speed-up: the handler loads as without it
    logging.warning('model preload skipped: %s', e)
    return
  if spec is not None:
    start(spec)


_start_in_worker()  # at import: Beam's SDK worker imports its plugins right before it connects to the runner
