"""Every option of the job, its defaults and its validation, in one place.

Standard Beam options (--runner, --direct_num_workers, --temp_location, ...)
pass through untouched; ImageOptions adds ours. validate() turns them into a
JobConfig or fails with a message before any work starts.
"""
import dataclasses
import multiprocessing
from typing import List, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from transforms import decode, models


class OptionsError(ValueError):
  """A bad option; the message says which and why."""


class ImageOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument('--input', help='Image files: a glob, or several separated by commas (local or gs://).')
    parser.add_argument('--output', help='Output prefix (directory or gs:// path): predictions/, errors/ and '
                        'summary.json are written under it.')
    parser.add_argument('--task', default=models.BOTH, help='classify, embed or both (one forward pass).')
    parser.add_argument('--model', help='TF-Hub handle (https://tfhub.dev/... or google/...), or a local path.')
    parser.add_argument('--labels_file', default=None,
                        help='Class names, one per line (line i = class i). Beam keeps --labels for '
                        'Dataflow job labels.')
    parser.add_argument('--top_k', type=int, default=5, help='How many classes to keep per image.')
    parser.add_argument('--image_size', type=int, default=None,
                        help='Input size for models that accept any size (the model\'s own size otherwise).')
    parser.add_argument('--resize_method', default='bilinear', help='|'.join(decode.RESIZE_METHODS))
    parser.add_argument('--min_batch_size', type=int, default=8, help='Smallest inference batch.')
    parser.add_argument('--max_batch_size', type=int, default=64, help='Largest inference batch.')
    parser.add_argument('--model_threads', type=int, default=None,
                        help='Compute threads per worker process (default: cores / local workers on the '
                        'DirectRunner, 1 elsewhere, where runners start one worker process per core).')
    parser.add_argument('--progress_seconds', type=float, default=10.0,
                        help='How often each worker logs images done and images/s.')
    parser.add_argument('--num_shards', type=int, default=0, help='Parquet files per dataset (0: runner decides).')


@dataclasses.dataclass(frozen=True)
class JobConfig:
  inputs: Tuple[str, ...]
  output: str
  model: models.ModelSpec
  labels: Optional[str]
  top_k: int
  resize_method: str
  min_batch_size: int
  max_batch_size: int
  num_shards: int
  progress_seconds: float


def _require(value, flag: str):
  if value in (None, ''):
    raise OptionsError(f'{flag} is required')
  return value


def _split(value: str) -> List[str]:
  return [part.strip() for part in value.split(',') if part.strip()]


def _local_workers(options: PipelineOptions) -> Optional[int]:
  """Worker processes on this machine, or None when the runner is remote."""
  runner = options.view_as(StandardOptions).runner
  if runner not in (None, 'DirectRunner', 'direct'):
    return None
  return options.view_as(DirectOptions).direct_num_workers or multiprocessing.cpu_count()


def apply_local_defaults(argv: Sequence[str], options: PipelineOptions) -> None:
  """On the DirectRunner, use every core unless the user chose otherwise."""
  if _local_workers(options) is None:
    return
  direct = options.view_as(DirectOptions)
  if not any(a.startswith('--direct_num_workers') for a in argv):
    direct.direct_num_workers = 0  # Beam reads 0 as one worker per core
  if not any(a.startswith('--direct_running_mode') for a in argv):
    direct.direct_running_mode = 'multi_processing'


def validate(options: PipelineOptions) -> JobConfig:
  """Checks what can be checked without data; raises OptionsError."""
  o = options.view_as(ImageOptions)
  inputs = tuple(_split(_require(o.input, '--input')))
  output = _require(o.output, '--output').rstrip('/')
  location = _require(o.model, '--model')
  if o.task not in models.TASKS:
    raise OptionsError(f'--task must be one of {", ".join(models.TASKS)}, not {o.task!r}')
  if o.top_k < 1:
    raise OptionsError(f'--top_k must be at least 1, not {o.top_k}')
  if o.resize_method not in decode.RESIZE_METHODS:
    raise OptionsError(f'--resize_method must be one of {", ".join(decode.RESIZE_METHODS)}, '
                       f'not {o.resize_method!r}')
  if o.min_batch_size < 1 or o.max_batch_size < o.min_batch_size:
    raise OptionsError(f'need 1 <= --min_batch_size <= --max_batch_size, got {o.min_batch_size} and '
                       f'{o.max_batch_size}')
  if o.image_size is not None and o.image_size < 1:
    raise OptionsError(f'--image_size must be positive, not {o.image_size}')
  if o.progress_seconds <= 0:
    raise OptionsError(f'--progress_seconds must be positive, not {o.progress_seconds}')
  if o.num_shards < 0:
    raise OptionsError(f'--num_shards must be 0 or more, not {o.num_shards}')
  if o.labels_file and not FileSystems.exists(o.labels_file):
    raise OptionsError(f'--labels_file not found: {o.labels_file}')
  for pattern in inputs:
    if not FileSystems.match([pattern], limits=[1])[0].metadata_list:
      raise OptionsError(f'--input matches no files: {pattern}')
  threads = o.model_threads
  if threads is None:
    workers = _local_workers(options)
    threads = max(1, multiprocessing.cpu_count() // workers) if workers else 1
  elif threads < 1:
    raise OptionsError(f'--model_threads must be positive, not {threads}')
  spec = models.ModelSpec(models.locate.canonical(location), o.task, o.image_size, threads)
  return JobConfig(inputs, output, spec, o.labels_file, o.top_k, o.resize_method, o.min_batch_size,
                   o.max_batch_size, o.num_shards, o.progress_seconds)
