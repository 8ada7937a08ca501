"""On the local runner the job uses the whole machine unless told otherwise: one worker process per core, and
the cores shared among their models' threads. Remote runners start one worker process per core themselves."""
import multiprocessing
from typing import Optional, Sequence

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions


def local_workers(options: PipelineOptions) -> Optional[int]:
  """Worker processes on this machine, or None when the runner is remote."""
  runner = options.view_as(StandardOptions).runner
  if runner not in (None, 'DirectRunner', 'direct'):
    return None
  return options.view_as(DirectOptions).direct_num_workers or multiprocessing.cpu_count()


def apply(argv: Sequence[str], options: PipelineOptions) -> None:
  """On the DirectRunner: every core, in worker processes, unless the user chose otherwise."""
  if local_workers(options) is None:
    return
  direct = options.view_as(DirectOptions)
  if not any(a.startswith('--direct_num_workers') for a in argv):
    direct.direct_num_workers = 0  # Beam reads 0 as one worker per core
  if not any(a.startswith('--direct_running_mode') for a in argv):
    direct.direct_running_mode = 'multi_processing'


def model_threads(options: PipelineOptions) -> int:
  """Compute threads per worker process when --model_threads is not given: the cores over the local workers,
  1 on remote runners."""
  workers = local_workers(options)
  return max(1, multiprocessing.cpu_count() // workers) if workers else 1
