"""(a) The limit: a tight loop, no Beam, that reads, decodes, preprocesses and runs the model on all cores.

`python -m benchmarks.limit --input GLOB --model MODEL --task TASK [--processes N] [--threads T]`

One process per core (threads per process as the job sets them: cores /
processes), each taking an equal share of the files and running them through
the very functions the job uses: transforms.decode for pixels, the project's
model backend for the forward pass (for TFLite a bare LiteRT invoke per image
with the batch fixed at one in the file, for TF one call per batch). Nothing is
written: this is what decoding plus the model cost on this machine, the number
the job is measured against. Prints a JSON line.
"""
import argparse
import glob
import json
import multiprocessing
import os
import sys
import time
from typing import List, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from pipeline.options import DEFAULT_MAX_BATCH_SIZE  # pylint: disable=wrong-import-position

BATCH = DEFAULT_MAX_BATCH_SIZE  # batched as the job does by default


def _run(paths: Sequence[str], model_location: str, task: str, threads: int, batch: int) -> int:
  """One worker process: the whole loop over its share; returns images done."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from transforms import decode
  from transforms.infer import models  # pylint: disable=import-outside-toplevel
  model = models.load(models.ModelSpec(model_location, task, num_threads=threads))
  size = model.info.input_size
  done = 0
  for start in range(0, len(paths), batch):
    pixels = []
    for path in paths[start:start + batch]:
      with open(path, 'rb') as f:
        pixels.append(decode.decode(f.read(), size))
    model.predict(np.stack(pixels))
    done += len(pixels)
  return done


def run(pattern: str, model_location: str, task: str, processes: Optional[int] = None,
        threads: Optional[int] = None, batch: int = BATCH) -> dict:
  paths = sorted(glob.glob(pattern))
  processes = processes or os.cpu_count() or 1
  threads = threads or max(1, (os.cpu_count() or 1) // processes)
  shares: List[Sequence[str]] = [paths[i::processes] for i in range(processes)]
  start = time.monotonic()
  with multiprocessing.get_context('spawn').Pool(processes) as pool:
    done = sum(pool.starmap(_run, [(share, model_location, task, threads, batch) for share in shares]))
  seconds = time.monotonic() - start
  return {'images': done, 'seconds': round(seconds, 3), 'processes': processes, 'threads': threads}


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.limit', description=__doc__.split('\n')[0])
  parser.add_argument('--input', required=True, help='glob of image files')
  parser.add_argument('--model', required=True)
  parser.add_argument('--task', default='both')
  parser.add_argument('--processes', type=int, default=None, help='default: one per core')
  parser.add_argument('--threads', type=int, default=None, help='model threads per process; default cores / processes')
  parser.add_argument('--batch', type=int, default=BATCH)
  args = parser.parse_args(argv)
  print(json.dumps(run(args.input, args.model, args.task, args.processes, args.threads, args.batch)))
  return 0


if __name__ == '__main__':
  sys.exit(main())
