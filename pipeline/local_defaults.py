"""Defaults that use the machine or the cluster the job runs on, unless the user chose otherwise.

On the local runner: one worker process per core, the cores shared among their models' threads. On Flink:
one SDK worker process per task slot of each TaskManager (Beam's own default is one per TaskManager, which
leaves every slot but one waiting on it), one model thread each: a slot is a core (templates/flink/README.md).
Dataflow starts one worker process per core itself.
"""
import json
import logging
import multiprocessing
import urllib.request
from typing import Optional, Sequence

from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, FlinkRunnerOptions,
                                                  PipelineOptions, PortableOptions, StandardOptions)

FLINK_RUNNERS = ('FlinkRunner', 'flink')
# Beam runs `pip freeze` at submission (1 s of each Flink job's start) to stage the launcher's package list for
# the workers' boot program to compare; the project's SDK workers (templates/flink/sdk_worker.py) fetch no
# artifacts: they run the job installed beside them.
NO_PACKAGE_LIST = 'disable_logging_submission_environment'
_MAGIC_MASTERS = ('[auto]', '[local]', '[collection]')


def local_workers(options: PipelineOptions) -> Optional[int]:
  """Worker processes on this machine, or None when the runner is remote."""
  runner = options.view_as(StandardOptions).runner
  if runner not in (None, 'DirectRunner', 'direct'):
    return None
  return options.view_as(DirectOptions).direct_num_workers or multiprocessing.cpu_count()


def flink_slots(master: str, timeout: float = 5) -> Optional[int]:
  """Task slots per TaskManager of the Flink cluster whose REST API is at `master` (the most any has), or None
  when it cannot be asked."""
  if not master or master in _MAGIC_MASTERS:
    return None
  url = (master if '://' in master else f'http://{master}').rstrip('/') + '/taskmanagers'
  try:
    with urllib.request.urlopen(url, timeout=timeout) as response:
      slots = [tm['slotsNumber'] for tm in json.load(response)['taskmanagers']]
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning('could not ask Flink at %s for its task slots (%s): Beam\'s default of one SDK worker per '
                    'TaskManager applies unless --sdk_worker_parallelism is given', master, e)
    return None
  return max(slots) if slots else None


def _given(argv: Sequence[str], name: str) -> bool:
  return any(a == name or a.startswith(name + '=') for a in argv)


def apply(argv: Sequence[str], options: PipelineOptions) -> None:
  """The DirectRunner: every core, in worker processes. Flink: an SDK worker per slot of each TaskManager."""
  if options.view_as(StandardOptions).runner in FLINK_RUNNERS:
    portable = options.view_as(PortableOptions)
    if not _given(argv, '--sdk_worker_parallelism'):
      slots = flink_slots(options.view_as(FlinkRunnerOptions).flink_master)
      if slots:
        portable.sdk_worker_parallelism = slots
    debug = options.view_as(DebugOptions)
    if not debug.lookup_experiment(NO_PACKAGE_LIST):
      debug.add_experiment(NO_PACKAGE_LIST)
    return
  if local_workers(options) is None:
    return
  direct = options.view_as(DirectOptions)
  if not _given(argv, '--direct_num_workers'):
    direct.direct_num_workers = 0  # Beam reads 0 as one worker per core
  if not _given(argv, '--direct_running_mode'):
    direct.direct_running_mode = 'multi_processing'


def model_threads(options: PipelineOptions) -> int:
  """Compute threads per worker process when --model_threads is not given: the cores over the local workers on
  the DirectRunner; 1 on remote runners, whose workers each have a core (a task slot on Flink)."""
  workers = local_workers(options)
  return max(1, multiprocessing.cpu_count() // workers) if workers else 1
