"""(d) The Ray Data peer: the job written the way Ray's documentation shows batch inference.

`python -m benchmarks.peer_ray --input GLOB --output DIR --model MODEL --task classify|both --labels_file FILE
[--variant read_images|read_binary_files]`, run by the python of its own virtualenv (`ensure_venv()`: Ray Data
and the model runtimes pinned in benchmarks/requirements-ray.txt, at the job's versions).

read_images: `ray.data.read_images(paths, size=(160, 160), mode='RGB', include_paths=True)` (Ray's read tasks
decode with Pillow and resize the whole image to the model's size), `map_batches` with a callable class that
holds the model (an actor pool: one actor per core), `write_parquet`. read_binary_files: the files' bytes read
by Ray's read tasks and decoded in the actors, with the same decode as the baseline (c). The model calls, the
decode and the rows are benchmarks/plain_models.py, shared with (c): same model files, same output columns.

Each actor asks for half a CPU (`num_cpus=0.5`): with a whole CPU each, the actors take both cores of a 2-core
machine and Ray never schedules a read task, so the job waits forever. Batches of 64 images, as the job's.
"""
import argparse
import glob
import os
import sys
from typing import Dict, Optional, Sequence

from benchmarks import venvs

VENV = venvs.ROOT / '.venv-ray'
REQUIREMENTS = venvs.ROOT / 'benchmarks' / 'requirements-ray.txt'
VARIANTS = ('read_images', 'read_binary_files')
BATCH = 64
ACTOR_CPUS = 0.5


def ensure_venv() -> str:
  """The python of the Ray virtualenv, made from benchmarks/requirements-ray.txt if not already."""
  return venvs.ensure(VENV, REQUIREMENTS)


class _Predictor:
  """An actor's model, loaded once; a batch of images in, its rows out as an Arrow table."""

  def __init__(self, model: str, task: str, labels_file: str):
    from benchmarks import plain_models  # pylint: disable=import-outside-toplevel
    self._plain = plain_models
    self._model = plain_models.load(model, task)
    self._labels = plain_models.read_labels(labels_file)
    self._task = task

  def pixels(self, batch: Dict[str, object]):
    return batch['image']

  def __call__(self, batch: Dict[str, object]):
    outputs = self._model(self.pixels(batch))
    return self._plain.table(list(batch['path']), outputs, self._labels, self._task)


class _DecodingPredictor(_Predictor):
  """The same, over the files' bytes: decoded in the actor."""

  def pixels(self, batch: Dict[str, object]):
    return [self._plain.decode(data) for data in batch['bytes']]


def _start(ray, attempts: int = 3) -> None:
  """`ray.init()`, as Ray Data's first call would make it; again when the local node did not register within the
  30 s Ray allows it (fixed in Ray 2.60's node.py), as happens on a machine loaded many times over its cores."""
  for attempt in range(1, attempts + 1):
    try:
      ray.init()
      return
    except Exception as error:  # pylint: disable=broad-exception-caught  # Ray raises a bare Exception
      if 'timed out during startup' not in str(error) or attempt == attempts:
        raise
      print(f'peer_ray: Ray did not start ({error}), try {attempt + 1} of {attempts}', file=sys.stderr, flush=True)
      ray.shutdown()


def _paths(pattern: str):
  """The files a glob names, and the filesystem to read them with: local, or gs:// through pyarrow's
  GcsFileSystem towards $STORAGE_EMULATOR_HOST (`endpoint_override`, anonymous), as Ray's documentation shows."""
  if not pattern.startswith('gs://'):
    return sorted(glob.glob(pattern)), None
  import fnmatch  # pylint: disable=import-outside-toplevel
  from pyarrow import fs  # pylint: disable=import-outside-toplevel
  scheme, _, endpoint = os.environ['STORAGE_EMULATOR_HOST'].rpartition('://')
  gcs = fs.GcsFileSystem(anonymous=True, endpoint_override=endpoint, scheme=scheme or 'http')
  where = pattern[len('gs://'):]
  listed = gcs.get_file_info(fs.FileSelector(where.rsplit('/', 1)[0], recursive=True))
  return sorted(i.path for i in listed if i.type == fs.FileType.File and fnmatch.fnmatch(i.path, where)), gcs


def run(pattern: str, output: str, model: str, task: str, labels_file: str, variant: str = VARIANTS[0]) -> None:
  os.environ.setdefault('RAY_USAGE_STATS_ENABLED', '0')
  import ray  # pylint: disable=import-outside-toplevel
  from benchmarks import plain_models  # pylint: disable=import-outside-toplevel
  _start(ray)
  ray.data.DataContext.get_current().enable_progress_bars = False
  paths, filesystem = _paths(pattern)
  if variant == 'read_images':
    dataset = ray.data.read_images(paths, size=(plain_models.SIZE, plain_models.SIZE), mode='RGB',
                                   include_paths=True, filesystem=filesystem)
    predictor = _Predictor
  else:
    dataset = ray.data.read_binary_files(paths, include_paths=True, filesystem=filesystem)
    predictor = _DecodingPredictor
  dataset = dataset.map_batches(predictor, fn_constructor_args=(model, task, labels_file), batch_size=BATCH,
                                compute=ray.data.ActorPoolStrategy(size=os.cpu_count() or 1), num_cpus=ACTOR_CPUS)
  dataset.write_parquet(os.path.join(output, 'predictions'))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.peer_ray', description=__doc__.split('\n')[0])
  parser.add_argument('--input', required=True, help='glob of image files')
  parser.add_argument('--output', required=True)
  parser.add_argument('--model', required=True)
  parser.add_argument('--task', default='classify', choices=('classify', 'both'))
  parser.add_argument('--labels_file', required=True)
  parser.add_argument('--variant', default=VARIANTS[0], choices=VARIANTS)
  args = parser.parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  run(args.input, args.output, args.model, args.task, args.labels_file, args.variant)
  return 0


if __name__ == '__main__':
  sys.exit(main())
