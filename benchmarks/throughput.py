"""Throughput side by side: (a) the limit, (b) this job, (c) the documentation-style baseline.

`python -m benchmarks.throughput [--images 5000] [--repeats 3] [--large_images 20000] [--configs ...] [--variants ...]`

Run it alone on the machine (`flock /tmp/cpu.lock ...` where the lock is
shared). For each configuration (classify with the quantized TFLite model,
both with the TF1 Hub model) it runs, interleaved and repeated, each variant
as its own command, the way a user would:

  a           benchmarks.limit: read, decode, run the model in a tight loop, one process per core
  b           python -m pipeline with its defaults (DirectRunner, one worker process per core), image files
  b_tfrecord  the same job over the same images packed into TFRecord shards (pipeline/pack.py)
  b_flink     the same job on the project's Flink cluster, started for the benchmark with a slot per core
              (benchmarks/flink.py); only when asked for (--variants ...,b_flink): it needs Java
  c           benchmarks.baseline: MatchFiles + ReadMatches, Pillow in a Map, RunInference, WriteToParquet

Every variant runs on `--images` images and on `--small_images` images, so
that a start-up (interpreter, imports, model loading, worker processes) is
told apart from the per-image cost: `images/s` is the marginal rate
(images - small_images) / (seconds - small seconds), from the medians of the
repeats; `end to end` is images / seconds of the whole command, start-up
included; `start-up` is what the two points put at zero images. `--small_images 0`
makes no start-up runs: then only the end-to-end rates (and CPU per image,
start-up included) are measured, as for a quick check that every variant runs.

Peak RSS: a sampler thread lists the command's descendant processes every
0.1 s (psutil) and reads each one's VmHWM (the kernel's high-water mark of its
resident set) from /proc; `worker` is the largest over the processes that do
the work (the runner's SDK worker processes, the limit's pool processes),
`launcher` the command's own process. `--large_images` runs every variant
once more on that many images: the end-to-end rates of a larger job, measured
rather than extrapolated, and whether a worker's peak grows with the input. The
same sampler reads each process's CPU time: `worker CPU ms per image` (marginal,
as the rate) says where the cores went, and the `per core` ratios compare
images per second of worker CPU, which a busy shared host moves far less than
the wall clock (and which shows how much of a lead comes from using every core).

Prints the table as Markdown and writes everything to `--json`.
"""
import argparse
import contextlib
import glob
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from typing import Dict, List, NamedTuple, Optional, Sequence

import psutil
import pyarrow.parquet as pq

from benchmarks import data, flink, shared

PYTHON = sys.executable
VARIANTS = ('a', 'b', 'b_tfrecord', 'c', 'b_flink')
DEFAULT_VARIANTS = VARIANTS[:4]
CONFIGS = {  # name -> (task, model)
    'classify_tflite': ('classify', str(shared.TFLITE_QUANT)),
    'both_hub': ('both', str(shared.HUB_DIRS[shared.HUB_CLASSIFIER])),
}
LOCAL_RUNNER = ['--direct_num_workers=0', '--direct_running_mode=multi_processing']  # the job's own defaults
VERSIONS = ('apache-beam', 'tensorflow', 'tensorflow-hub', 'ai-edge-litert', 'pillow', 'numpy', 'pyarrow')
SAMPLE_SECONDS = 0.1
MB = 1 << 20


class Run(NamedTuple):
  images: int  # rows the command produced, checked against the input
  seconds: float
  worker_rss_mb: float
  launcher_rss_mb: float
  worker_cpu_seconds: float  # user + system, all worker processes together
  launcher_cpu_seconds: float
  cluster_cpu_seconds: float = 0.0  # b_flink: the cluster's JVMs (JobManager, TaskManager, job server)


def _cpu(process: psutil.Process) -> float:
  try:
    times = process.cpu_times()
    return times.user + times.system
  except psutil.Error:
    return 0.0


def _hwm(process: psutil.Process) -> int:
  """The process's peak resident set so far, in bytes (VmHWM; RSS where /proc lacks it)."""
  try:
    with open(f'/proc/{process.pid}/status', encoding='ascii') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) * 1024
    return process.memory_info().rss
  except (OSError, psutil.Error):
    return 0


class _PeakSampler(threading.Thread):
  """Peak RSS and CPU time of a command's own process and of each of its descendants, sampled until it exits."""

  def __init__(self, pid: int, more_workers=lambda: ()):
    super().__init__(daemon=True)
    self._root = psutil.Process(pid)
    self._more_workers = more_workers  # workers that are not the command's descendants (Flink's SDK workers)
    self.launcher = 0
    self.children: Dict[int, int] = {}
    self.launcher_cpu = 0.0
    self.children_cpu: Dict[int, float] = {}
    self.done = threading.Event()

  def run(self):
    while not self.done.is_set():
      self.launcher = max(self.launcher, _hwm(self._root))
      self.launcher_cpu = max(self.launcher_cpu, _cpu(self._root))
      try:
        descendants = self._root.children(recursive=True)
      except psutil.Error:
        descendants = []
      descendants += list(self._more_workers())
      for child in descendants:
        self.children[child.pid] = max(self.children.get(child.pid, 0), _hwm(child))
        self.children_cpu[child.pid] = max(self.children_cpu.get(child.pid, 0.0), _cpu(child))
      self.done.wait(SAMPLE_SECONDS)


def _command(variant: str, task: str, model: str, dataset: data.DataSet, output: str) -> List[str]:
  labels = ['--labels_file', str(shared.LABELS)]
  if variant == 'a':
    return [PYTHON, '-m', 'benchmarks.limit', '--input', dataset.files, '--model', model, '--task', task]
  if variant in ('b', 'b_tfrecord', 'b_flink'):
    source = dataset.tfrecord if variant == 'b_tfrecord' else dataset.files
    runner = flink.ACTIVE.flags if variant == 'b_flink' else []
    return ([PYTHON, '-m', 'pipeline', '--input', source, '--output', output, '--model', model, '--task', task]
            + labels + runner)
  return ([PYTHON, '-m', 'benchmarks.baseline', '--input', dataset.files, '--output', output, '--model', model,
           '--task', task] + labels + LOCAL_RUNNER)


def _rows(variant: str, output: str, stdout: str) -> int:
  if variant == 'a':
    return json.loads(stdout.strip().splitlines()[-1])['images']
  return pq.ParquetDataset(os.path.join(output, 'predictions')).read(columns=['id']).num_rows


def _library_files() -> List[str]:
  """The installed files of the libraries every variant loads (TensorFlow's shared objects are most of them)."""
  located = (f.locate() for name in VERSIONS for f in metadata.distribution(name).files or ())
  return [str(path) for path in located if path.is_file()]


def _warm(variant: str, model: str, dataset: data.DataSet) -> None:
  """Reads the variant's input, the model and the libraries, so that every run starts with them in the page cache.

  Hosts that page out memory left idle for a while (DAMON reclaim, ballooning) otherwise hand a run whichever
  part of its files the last minutes left cached, and a CPU benchmark measures the disk instead.
  """
  paths = glob.glob(dataset.tfrecord if variant == 'b_tfrecord' else dataset.files)
  paths += [str(f) for f in pathlib.Path(model).rglob('*') if f.is_file()] if os.path.isdir(model) else [model]
  paths += _library_files()
  for path in paths:
    with open(path, 'rb') as f:
      while f.read(1 << 20):
        pass


def run_once(variant: str, task: str, model: str, dataset: data.DataSet) -> Run:
  """Runs one variant as its own command; fails unless it produced a row for every image."""
  _warm(variant, model, dataset)
  scratch = tempfile.mkdtemp(prefix=f'bench_{variant}_')
  output = os.path.join(scratch, 'out')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
  cluster = flink.ACTIVE if variant == 'b_flink' else None
  more_workers = lambda: ()  # pylint: disable=unnecessary-lambda-assignment
  if cluster:  # the SDK workers the TaskManager starts for this run (an earlier run's may linger, idle)
    earlier, cluster_cpu = cluster.worker_pids(), cluster.cluster_cpu()
    more_workers = lambda: [w for w in cluster.workers() if w.pid not in earlier]  # pylint: disable=unnecessary-lambda-assignment
  try:
    with open(os.path.join(scratch, 'stderr'), 'w+', encoding='utf-8') as stderr:
      start = time.monotonic()
      proc = subprocess.Popen(_command(variant, task, model, dataset, output), cwd=shared.ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=stderr, text=True)
      sampler = _PeakSampler(proc.pid, more_workers)
      sampler.start()
      stdout, _ = proc.communicate()
      seconds = time.monotonic() - start
      sampler.done.set()
      sampler.join()
      if proc.returncode != 0:
        stderr.seek(0)
        raise RuntimeError(f'{variant} failed ({proc.returncode}):\n{stderr.read()[-3000:]}')
    rows = _rows(variant, output, stdout)
    if rows != dataset.count:
      raise RuntimeError(f'{variant} wrote {rows} rows for {dataset.count} images')
    worker = max(sampler.children.values(), default=0)
    return Run(rows, round(seconds, 3), round(worker / MB, 1), round(sampler.launcher / MB, 1),
               round(sum(sampler.children_cpu.values()), 2), round(sampler.launcher_cpu, 2),
               round(cluster.cluster_cpu() - cluster_cpu, 2) if cluster else 0.0)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def summarize(big: Sequence[Run], small: Sequence[Run]) -> dict:
  """Medians over the repeats: marginal and end-to-end rates, the start-up they imply, peak RSS. Without start-up
  runs (`small` empty), no marginal rate nor start-up, and CPU per image includes the start-up."""
  images, small_images = big[0].images, (small[0].images if small else 0)
  seconds = statistics.median(r.seconds for r in big)
  small_seconds = statistics.median(r.seconds for r in small) if small else None
  marginal = ((images - small_images) / (seconds - small_seconds)
              if small_seconds is not None and seconds > small_seconds else None)

  def cpu_ms(field: str) -> float:
    spent = statistics.median(getattr(r, field) for r in big)
    if small:
      spent -= statistics.median(getattr(r, field) for r in small)
    return round(1000 * spent / (images - small_images), 3)

  return {
      'images_per_second': round(marginal, 1) if marginal else None,
      'end_to_end_images_per_second': round(images / seconds, 1),
      'startup_seconds': round(seconds - images / marginal, 2) if marginal else None,
      'worker_cpu_ms_per_image': cpu_ms('worker_cpu_seconds'),
      'launcher_cpu_ms_per_image': cpu_ms('launcher_cpu_seconds'),
      'cluster_cpu_ms_per_image': cpu_ms('cluster_cpu_seconds'),
      'seconds': seconds,
      'small_seconds': small_seconds,
      'worker_peak_rss_mb': max(r.worker_rss_mb for r in list(big) + list(small)),
      'launcher_peak_rss_mb': max(r.launcher_rss_mb for r in list(big) + list(small)),
      'runs': [r._asdict() for r in big],
      'small_runs': [r._asdict() for r in small],
  }


def machine() -> dict:
  cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo', encoding='ascii')
              if line.startswith('model name')), platform.processor())
  return {
      'cores': os.cpu_count(),
      'cpu': cpu,
      'memory_gb': round(psutil.virtual_memory().total / (1 << 30), 1),
      'python': platform.python_version(),
      **{name: metadata.version(name) for name in VERSIONS},
  }


PAIRS = (('b', 'a'), ('b', 'c'), ('b_tfrecord', 'a'), ('b_tfrecord', 'c'), ('b_flink', 'b'))


def _ratios(rates: Dict[str, Optional[float]], suffix: str) -> Dict[str, Optional[float]]:
  return {f'{top}/{bottom}{suffix}': round(rates[top] / rates[bottom], 2) if rates[top] and rates[bottom] else None
          for top, bottom in PAIRS if top in rates and bottom in rates}


def _per_core(cpu_ms_per_image: Dict[str, float]) -> Dict[str, Optional[float]]:
  """Ratios of images per second of worker CPU, which contention on a shared host moves far less than the wall
  clock."""
  return _ratios({v: 1000 / ms if ms > 0 else None for v, ms in cpu_ms_per_image.items()}, ' per core')


def variant_ratios(results: Dict[str, dict]) -> Dict[str, Optional[float]]:
  """Marginal (when start-up runs were made), end-to-end and per-core ratios."""
  with_startup = all(r['small_runs'] for r in results.values())
  ratios = {**(_ratios({v: r['images_per_second'] for v, r in results.items()}, '') if with_startup else {}),
            **_ratios({v: r['end_to_end_images_per_second'] for v, r in results.items()}, ' end to end'),
            **_per_core({v: r['worker_cpu_ms_per_image'] for v, r in results.items()})}
  if 'b_flink' in results and 'b' in results:  # every process's CPU: the launcher, and Flink's JVMs
    every = {v: results[v]['worker_cpu_ms_per_image'] + results[v]['launcher_cpu_ms_per_image'] +
             results[v].get('cluster_cpu_ms_per_image', 0) for v in ('b_flink', 'b')}
    ratios['b_flink/b per core, all processes'] = round(every['b'] / every['b_flink'], 2) if every['b_flink'] > 0 else None
  return ratios


def benchmark(images: int, small_images: int, repeats: int, large_images: Optional[int], configs: Sequence[str],
              variants: Sequence[str], data_dir: pathlib.Path = data.ROOT, log=print) -> dict:
  sizes = (images, small_images) if small_images else (images,)  # small_images 0: no start-up runs
  counts = set(sizes) | ({large_images} if large_images else set())
  sets = {count: data.make(count, data_dir) for count in counts}
  runs: Dict[tuple, List[Run]] = {}
  with flink.cluster() if 'b_flink' in variants else contextlib.nullcontext():
    report = _measure(images, sizes, repeats, large_images, configs, variants, sets, runs, log)
  return report


def _measure(images, sizes, repeats, large_images, configs, variants, sets, runs, log) -> dict:
  small_images = sizes[1] if len(sizes) > 1 else 0
  for repeat in range(repeats):
    order = list(variants[repeat % len(variants):]) + list(variants[:repeat % len(variants)])  # no fixed order
    for config in configs:
      task, model = CONFIGS[config]
      for variant in order:
        for count in sizes:
          run = run_once(variant, task, model, sets[count])
          runs.setdefault((config, variant, count), []).append(run)
          log(f'repeat {repeat + 1}/{repeats} {config} {variant} {count} images: {run.seconds:.1f} s, '
              f'worker {run.worker_rss_mb:.0f} MB')
  report = {'machine': machine(), 'images': images, 'small_images': small_images, 'repeats': repeats,
            'configs': {}}
  for config in configs:
    results = {v: summarize(runs[(config, v, images)], runs.get((config, v, small_images), [])) for v in variants}
    entry = {'task': CONFIGS[config][0], 'model': CONFIGS[config][1], 'variants': results,
             'ratios': variant_ratios(results)}
    if large_images:
      large = {}
      for variant in variants:
        large[variant] = run_once(variant, *CONFIGS[config], sets[large_images])
        log(f'{config} {variant} {large_images} images: {large[variant].seconds:.1f} s, '
            f'worker {large[variant].worker_rss_mb:.0f} MB')
      cpu_ms = {v: round(1000 * r.worker_cpu_seconds / large_images, 3) for v, r in large.items()}  # start-up in
      entry['large'] = {
          'images': large_images,
          'end_to_end_images_per_second': {v: round(large_images / r.seconds, 1) for v, r in large.items()},
          'worker_cpu_ms_per_image': cpu_ms,
          'ratios': {**_ratios({v: large_images / r.seconds for v, r in large.items()}, ' end to end'),
                     **_per_core(cpu_ms)},
          'worker_peak_rss_mb': {v: [max(r.worker_rss_mb for r in runs[(config, v, images)]), large[v].worker_rss_mb]
                                 for v in variants},
          'runs': {v: r._asdict() for v, r in large.items()}}
    report['configs'][config] = entry
  return report


def _fmt(value, digits=0) -> str:
  return '-' if value is None else f'{value:,.{digits}f}'


def _ratio_table(entries: Dict[str, dict], suffix: str = '') -> List[str]:
  """One row per ratio, one column per configuration."""
  names = list(next(iter(entries.values()))['ratios'])
  lines = ['| ratio | ' + ' | '.join(entries) + ' |', '| --- |' + ' ---: |' * len(entries)]
  for name in names:
    lines.append(f'| {name}{suffix} | ' + ' | '.join(_fmt(e['ratios'].get(name), 2) for e in entries.values()) + ' |')
  return lines


def markdown(report: dict) -> str:
  """The tables docs/benchmarks.md shows."""
  startup = f'{report["small_images"]:,} for the start-up' if report['small_images'] else 'no start-up runs'
  lines = [f'{report["images"]:,} images ({startup}), median of '
           f'{report["repeats"]} interleaved runs each; {report["machine"]["cores"]} cores, {report["machine"]["cpu"]}',
           '',
           '| configuration | variant | images/s | end to end | start-up s | worker CPU ms per image '
           '| cluster CPU ms per image | peak RSS per worker | launcher |',
           '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for config, entry in report['configs'].items():
    for variant, r in entry['variants'].items():
      lines.append(f'| {config} | {variant} | {_fmt(r["images_per_second"])} | '
                   f'{_fmt(r["end_to_end_images_per_second"])} | {_fmt(r["startup_seconds"], 1)} | '
                   f'{_fmt(r["worker_cpu_ms_per_image"], 2)} | {_fmt(r.get("cluster_cpu_ms_per_image") or None, 2)} | '
                   f'{_fmt(r["worker_peak_rss_mb"])} MB | {_fmt(r["launcher_peak_rss_mb"])} MB |')
  lines += [''] + _ratio_table(report['configs'])
  large = {config: entry['large'] for config, entry in report['configs'].items() if 'large' in entry}
  if large:
    n = next(iter(large.values()))['images']
    lines += ['', f'{n:,} images, one run each:', '',
              f'| configuration | variant | end to end | worker CPU ms per image | peak RSS per worker, '
              f'{report["images"]:,} images | peak RSS per worker, {n:,} images |',
              '| --- | --- | ---: | ---: | ---: | ---: |']
    for config, entry in large.items():
      for variant, rate in entry['end_to_end_images_per_second'].items():
        peaks = entry['worker_peak_rss_mb'][variant]
        cpu_ms = entry['worker_cpu_ms_per_image'][variant]
        lines.append(f'| {config} | {variant} | {_fmt(rate)} | {_fmt(cpu_ms, 2)} | {_fmt(peaks[0])} MB | '
                     f'{_fmt(peaks[1])} MB |')
    lines += [''] + _ratio_table(large, f', {n:,} images')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.throughput', description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=5000, help='images per measured run')
  parser.add_argument('--small_images', type=int, default=None,
                      help='images of the runs that measure start-up (default: images / 10); 0: no such runs, '
                      'end-to-end rates only')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--large_images', type=int, default=None,
                      help='also run every variant once on this many images: end-to-end rates and workers\' peak RSS '
                      'at a larger size (absent or 0: no such pass)')
  parser.add_argument('--configs', default=','.join(CONFIGS), help=f'comma-separated, of {", ".join(CONFIGS)}')
  parser.add_argument('--variants', default=','.join(DEFAULT_VARIANTS),
                      help=f'comma-separated, of {", ".join(VARIANTS)}')
  parser.add_argument('--data_dir', default=str(data.ROOT), help='where the generated images are cached')
  parser.add_argument('--json', default=str(data.ROOT / 'throughput.json'), help='where the full results go')
  args = parser.parse_args(argv)
  configs, variants = args.configs.split(','), args.variants.split(',')
  unknown = sorted(set(configs) - set(CONFIGS) | set(variants) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown configurations or variants: {", ".join(unknown)}')
  small = max(1, args.images // 10) if args.small_images is None else args.small_images
  report = benchmark(args.images, small, args.repeats, args.large_images, configs, variants, pathlib.Path(args.data_dir),
                     log=lambda line: print(line, file=sys.stderr, flush=True))
  report['command'] = ' '.join(['python -m benchmarks.throughput'] + list(argv if argv is not None else sys.argv[1:]))
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2)
  print(markdown(report))
  return 0


if __name__ == '__main__':
  sys.exit(main())
