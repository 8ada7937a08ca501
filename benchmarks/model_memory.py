"""Memory per machine against throughput: one model per worker process, or copies shared across processes.

`python -m benchmarks.model_memory [--images 1500] [--small_images 150] [--repeats 3] [--modes default,shared]`

Runs the job (`python -m pipeline`, DirectRunner, `--direct_num_workers`
worker processes, 2 by default) with the TF1 Hub model and `--task both` on
the benchmark's JPEGs (benchmarks/data.py) in each mode, interleaved:

  default   one model in each worker process (the job's default)
  shared    --model_copies 1: one model per machine, in the first worker process that loads it; the other
            workers call it through Beam's multi_process_shared proxies (every batch pickled both ways)
  copies2   --model_copies 2
  *_tflite  the same with --tf_runtime tflite (the float TFLite conversion, docs/benchmarks.md)

The whole machine's memory is sampled every 0.2 s over the command and all
its descendants (which include the process serving a shared model): the sum
of their resident sets (RSS, which counts shared library pages once per
process), of their proportional sets (PSS from /proc/PID/smaps_rollup, which
splits them) and of their private pages (USS: what each more process adds),
the peak of each sum over the run, and each process's peak USS. CPU per image is
marginal (the run on `--images` less the run on `--small_images`), summed over
every process, launcher included. Prints a Markdown table of medians.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import psutil
import pyarrow.parquet as pq

from benchmarks import data, shared
from benchmarks.throughput import _cpu, _warm  # pylint: disable=protected-access

MODES = {
    'default': [],
    'shared': ['--model_copies', '1'],
    'copies2': ['--model_copies', '2'],
}
MB = 1 << 20


def _mode_flags(mode: str) -> List[str]:
  base, _, runtime = mode.partition('_')
  return MODES[base] + (['--tf_runtime', runtime] if runtime else [])


def _pss_uss(pid: int) -> tuple:
  """(PSS, USS: its private pages) of a process, from /proc/PID/smaps_rollup."""
  fields = {}
  try:
    with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as f:
      for line in f:
        name, _, rest = line.partition(':')
        if name in ('Pss', 'Private_Clean', 'Private_Dirty'):
          fields[name] = int(rest.split()[0]) * 1024
  except OSError:
    pass
  return fields.get('Pss', 0), fields.get('Private_Clean', 0) + fields.get('Private_Dirty', 0)


class _MachineSampler(threading.Thread):
  """Peaks of the summed RSS and PSS of a process tree, and each process's last CPU time."""

  def __init__(self, pid: int):
    super().__init__(daemon=True)
    self._root = psutil.Process(pid)
    self.rss = self.pss = self.uss = 0
    self.processes = 0
    self.private: Dict[int, int] = {}  # each process's peak USS
    self.cpu: Dict[int, float] = {}
    self.done = threading.Event()

  def run(self):
    while not self.done.is_set():
      try:
        tree = [self._root] + self._root.children(recursive=True)
      except psutil.Error:
        tree = []
      rss = pss = uss = 0
      for process in tree:
        try:
          rss += process.memory_info().rss
        except psutil.Error:
          continue
        proportional, private = _pss_uss(process.pid)
        pss, uss = pss + proportional, uss + private
        self.private[process.pid] = max(self.private.get(process.pid, 0), private)
        self.cpu[process.pid] = max(self.cpu.get(process.pid, 0.0), _cpu(process))
      self.rss, self.pss, self.uss = max(self.rss, rss), max(self.pss, pss), max(self.uss, uss)
      self.processes = max(self.processes, len(tree))
      self.done.wait(0.2)


def run_once(mode: str, dataset: data.DataSet, workers: int, model: str) -> dict:
  _warm('b', model, dataset)
  scratch = tempfile.mkdtemp(prefix=f'bench_memory_{mode}_')
  output = os.path.join(scratch, 'out')
  command = [sys.executable, '-m', 'pipeline', '--input', dataset.files, '--output', output, '--model', model,
             '--task', 'both', '--labels_file', str(shared.LABELS), f'--direct_num_workers={workers}',
             '--direct_running_mode=multi_processing'] + _mode_flags(mode)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
  try:
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=shared.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    sampler = _MachineSampler(proc.pid)
    sampler.start()
    _, stderr = proc.communicate()
    seconds = time.monotonic() - start
    sampler.done.set()
    sampler.join()
    if proc.returncode:
      raise RuntimeError(f'{mode} failed ({proc.returncode}):\n{stderr[-3000:]}')
    rows = pq.ParquetDataset(os.path.join(output, 'predictions')).read(columns=['id']).num_rows
    if rows != dataset.count:
      raise RuntimeError(f'{mode} wrote {rows} rows for {dataset.count} images')
    return {'seconds': round(seconds, 2), 'cpu_seconds': round(sum(sampler.cpu.values()), 2),
            'rss_mb': round(sampler.rss / MB), 'pss_mb': round(sampler.pss / MB), 'uss_mb': round(sampler.uss / MB),
            'private_mb': sorted((round(v / MB) for v in sampler.private.values() if v > 32 * MB), reverse=True),
            'processes': sampler.processes}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def summarize(big: List[dict], small: List[dict], images: int, small_images: int) -> dict:
  med = lambda runs, key: statistics.median(r[key] for r in runs)  # pylint: disable=unnecessary-lambda-assignment
  extra = images - small_images
  return {'images_per_second': round(extra / (med(big, 'seconds') - med(small, 'seconds')), 1),
          'cpu_ms_per_image': round(1000 * (med(big, 'cpu_seconds') - med(small, 'cpu_seconds')) / extra, 2),
          'seconds': med(big, 'seconds'), 'peak_rss_mb': med(big, 'rss_mb'), 'peak_pss_mb': med(big, 'pss_mb'),
          'peak_uss_mb': med(big, 'uss_mb'), 'private_mb': big[0]['private_mb'],
          'processes': max(r['processes'] for r in big), 'runs': big, 'small_runs': small}


class _Echo:
  """A model that computes nothing: what a shared model's proxy costs beyond the model."""

  def predict(self, images):
    import numpy as np  # pylint: disable=import-outside-toplevel
    from transforms.infer.models import Outputs  # pylint: disable=import-outside-toplevel
    return Outputs(np.zeros((len(images), 1001), np.float32), np.zeros((len(images), 512), np.float32))


def proxy_cost(calls: int = 200) -> dict:
  """CPU and wall ms per image of one proxied call with a batch of 64 160x160 images (both ends in this
  process: the serving thread's CPU is counted too), as RunInference makes it with --model_copies."""
  import uuid  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from apache_beam.utils import multi_process_shared  # pylint: disable=import-outside-toplevel
  model = multi_process_shared.MultiProcessShared(_Echo, tag=f'bench_{uuid.uuid4().hex}', always_proxy=True).acquire()
  pixels = np.random.default_rng(0).integers(0, 256, (64, 160, 160, 3), np.uint8)
  model.predict(pixels)
  cpu, wall = time.process_time(), time.monotonic()
  for _ in range(calls):
    model.predict(pixels)
  per = calls * len(pixels)
  return {'cpu_ms_per_image': round(1000 * (time.process_time() - cpu) / per, 4),
          'wall_ms_per_image': round(1000 * (time.monotonic() - wall) / per, 4)}


def markdown(report: dict) -> str:
  lines = [f'{report["images"]:,} images ({report["small_images"]} for the start-up), {report["workers"]} worker '
           f'processes, median of {report["repeats"]} interleaved runs; load average at start '
           f'{report["load_start"]}, at end {report["load_end"]}', '',
           '| mode | images/s | CPU ms per image (all processes) | peak RSS, machine | peak PSS, machine | '
           'peak USS, machine | USS per process (largest first) |', '| --- | ---: | ---: | ---: | ---: | ---: | --- |']
  for mode, r in report['modes'].items():
    lines.append(f'| {mode} | {r["images_per_second"]:,.0f} | {r["cpu_ms_per_image"]:.2f} | {r["peak_rss_mb"]:,.0f} MB '
                 f'| {r["peak_pss_mb"]:,.0f} MB | {r["peak_uss_mb"]:,.0f} MB | '
                 f'{", ".join(str(m) for m in r["private_mb"])} MB |')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.model_memory', description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=1500)
  parser.add_argument('--small_images', type=int, default=150)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--workers', type=int, default=2)
  parser.add_argument('--modes', default='default,shared')
  parser.add_argument('--model', default=str(shared.HUB_DIRS[shared.HUB_CLASSIFIER]))
  parser.add_argument('--proxy_cost', action='store_true', help='only measure a proxied call\'s own cost')
  parser.add_argument('--json', default=str(data.ROOT / 'model_memory.json'))
  args = parser.parse_args(argv)
  if args.proxy_cost:
    print(json.dumps(proxy_cost()))
    return 0
  modes = args.modes.split(',')
  sets = {n: data.make(n) for n in (args.images, args.small_images)}
  runs: Dict[tuple, List[dict]] = {}
  load_start = round(os.getloadavg()[0], 1)
  for repeat in range(args.repeats):
    for mode in modes[repeat % len(modes):] + modes[:repeat % len(modes)]:
      for n in (args.images, args.small_images):
        run = run_once(mode, sets[n], args.workers, args.model)
        runs.setdefault((mode, n), []).append(run)
        print(f'repeat {repeat + 1} {mode} {n}: {json.dumps(run)}', file=sys.stderr, flush=True)
  report = {'images': args.images, 'small_images': args.small_images, 'repeats': args.repeats,
            'workers': args.workers, 'load_start': load_start, 'load_end': round(os.getloadavg()[0], 1),
            'modes': {m: summarize(runs[(m, args.images)], runs[(m, args.small_images)], args.images,
                                   args.small_images) for m in modes}}
  with open(args.json, 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2)
  print(markdown(report))
  return 0


if __name__ == '__main__':
  sys.exit(main())
