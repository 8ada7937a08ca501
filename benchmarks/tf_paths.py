"""The TensorFlow model's speed by path: TF as the job runs it, a float TFLite conversion, oneDNN on and off.

`python -m benchmarks.tf_paths [--rounds 3] [--batches 20] [--threads 1] [--model DIR]`

Each round starts one process per oneDNN setting (TF_ENABLE_ONEDNN_OPTS=1 and
0: TensorFlow reads it once, at import), in turns. A process loads the model
through the job's backend (transforms.infer.models, the TF1 Hub module by
default, `--task both`), converts its pruned function to a float TFLite model
(transforms/infer/models/to_tflite.py: LiteRT, XNNPACK), then alternates the
paths on the same batches of 64 images (the job's batch) for `--batches`
batches each, five times: CPU ms per image is the process's CPU time over
the calls (time.process_time), so other jobs on the machine move it little.
The quantized TFLite model is timed beside them for scale. Agreement on the
shared photos: same top-1, embedding cosine. Prints a Markdown table (medians
over rounds and alternations) and a JSON line per process.
"""
import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

from benchmarks import shared

BATCH = 64


def _time_cpu(fn, pixels, batches: int) -> float:
  """CPU ms per image over `batches` calls."""
  start = time.process_time()
  for _ in range(batches):
    fn(pixels)
  return 1000 * (time.process_time() - start) / (batches * len(pixels))


def child(model: str, threads: int, batches: int, image_size: Optional[int]) -> dict:
  """One process: every path on the same batches, alternated."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from transforms.infer import models  # pylint: disable=import-outside-toplevel
  from tests import datagen  # pylint: disable=import-outside-toplevel
  spec = models.ModelSpec(model, models.BOTH, num_threads=threads, image_size=image_size)
  tf_model = models.load(spec)
  start = time.monotonic()
  lite = models.load(dataclasses.replace(spec, tf_runtime='tflite'))
  convert_seconds = time.monotonic() - start  # loading again, and converting
  assert lite._lite is not None, 'conversion failed'  # pylint: disable=protected-access
  quant = models.load(models.ModelSpec(str(shared.TFLITE_QUANT), models.BOTH, num_threads=threads))
  size = tf_model.info.input_size
  photos = datagen.photo_batch(size)
  pixels = np.concatenate([photos] * (BATCH // len(photos) + 1))[:BATCH]
  paths = {'tf': tf_model.predict, 'tflite_float': lite.predict, 'tflite_quant': quant.predict}
  for fn in paths.values():
    fn(pixels)  # warm-up
  ms: Dict[str, List[float]] = {name: [] for name in paths}
  for _ in range(5):
    for name, fn in paths.items():
      ms[name].append(_time_cpu(fn, pixels, batches))
  a, b = tf_model.predict(photos), lite.predict(photos)
  cosine = np.sum(a.embedding * b.embedding, 1) / (np.linalg.norm(a.embedding, axis=1) * np.linalg.norm(b.embedding, axis=1))
  return {'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'threads': threads, 'convert_seconds': round(convert_seconds, 2),
          'ms': ms, 'same_top1': int(np.sum(a.probabilities.argmax(1) == b.probabilities.argmax(1))), 'photos': len(photos),
          'min_cosine': float(cosine.min()), 'max_prob_diff': float(np.abs(a.probabilities - b.probabilities).max())}


def run(model: str, rounds: int, batches: int, threads: int, image_size: Optional[int] = None,
        log=print) -> List[dict]:
  results = []
  for r in range(rounds):
    order = ('1', '0') if r % 2 == 0 else ('0', '1')
    for onednn in order:
      env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
      out = subprocess.run([sys.executable, '-m', 'benchmarks.tf_paths', '--child', '--model', model,
                            '--threads', str(threads), '--batches', str(batches)]
                           + (['--image_size', str(image_size)] if image_size else []),
                           env=env, cwd=shared.ROOT, check=True, capture_output=True, text=True).stdout
      results.append(json.loads(out.strip().splitlines()[-1]))
      log(out.strip().splitlines()[-1])
  return results


def markdown(results: Sequence[dict]) -> str:
  lines = ['| path | oneDNN | CPU ms per image (median) | min .. max |', '| --- | --- | ---: | ---: |']
  for onednn in ('1', '0'):
    for name in ('tf', 'tflite_float', 'tflite_quant'):
      values = [v for r in results if r['onednn'] == onednn for v in r['ms'][name]]
      lines.append(f'| {name} | {"on" if onednn == "1" else "off"} | {statistics.median(values):.2f} | '
                   f'{min(values):.2f} .. {max(values):.2f} |')
  first = results[0]
  lines += ['', f'float TFLite vs TF on the {first["photos"]} shared photos: same top-1 {first["same_top1"]}/'
            f'{first["photos"]}, embedding cosine min {min(r["min_cosine"] for r in results):.6f}, largest probability '
            f'difference {max(r["max_prob_diff"] for r in results):.2e}; conversion '
            f'{statistics.median(r["convert_seconds"] for r in results):.1f} s (median)']
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.tf_paths', description=__doc__.split('\n')[0])
  parser.add_argument('--model', default=str(shared.HUB_DIRS[shared.HUB_CLASSIFIER]))
  parser.add_argument('--rounds', type=int, default=3)
  parser.add_argument('--batches', type=int, default=20, help='batches of 64 per path per alternation')
  parser.add_argument('--threads', type=int, default=1, help='model threads (the job: cores / worker processes)')
  parser.add_argument('--image_size', type=int, default=None, help='for models of any size (SavedModel): 160')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.model, args.threads, args.batches, args.image_size)))
    return 0
  results = run(args.model, args.rounds, args.batches, args.threads, args.image_size,
                log=lambda line: print(line, file=sys.stderr, flush=True))
  print(markdown(results))
  return 0


if __name__ == '__main__':
  sys.exit(main())
