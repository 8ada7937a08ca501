"""Throughput side by side: (a) the limit, (b) this job, (c) the documentation-style baseline.

`python -m benchmarks.throughput [--images 5000] [--repeats 3] [--large_images 20000] [--configs ...] [--variants ...]`

Run it alone on the machine (`flock /tmp/cpu.lock ...` where the lock is
shared). For each configuration (classify with the quantized TFLite model,
both with the TF1 Hub model) it runs, interleaved and repeated, each variant
as its own command, the way a user would (benchmarks/variants.py lists them):
(a) the limit, (b) this job (b_tfrecord over TFRecord shards, b_parquet over Parquet tables, b_flink on
Flink), (c) the documentation-style Beam baseline, and two peers, each in its
own virtualenv: (d) Ray Data, (e) PySpark (d_binary and e_pandas_udf, their
second variants, and b_flink only when asked for with --variants).
`--quick` prints the main ratios in a few minutes (see QUICK).

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
the work (the runner's SDK worker processes, the limit's pool processes; for
the peers every process of their own: Ray's GCS, raylet and workers, Spark's
JVM and Python workers, all descendants of the command; benchmarks/sampler.py),
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
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Dict, List, NamedTuple, Optional, Sequence

import psutil

from benchmarks import data, flink, shared
from benchmarks import variants as registry
from benchmarks.sampler import PeakSampler
from benchmarks.tables import headline, markdown  # pylint: disable=unused-import  # markdown: the tests' entry too

VARIANTS, DEFAULT_VARIANTS = tuple(registry.VARIANTS), registry.DEFAULT_VARIANTS
CONFIGS = {  # name -> (task, model)
    'classify_tflite': ('classify', str(shared.TFLITE_QUANT)),
    'both_hub': ('both', str(shared.HUB_DIRS[shared.HUB_CLASSIFIER])),
}
MB = 1 << 20


class Run(NamedTuple):
  images: int  # rows the command produced, checked against the input
  seconds: float
  worker_rss_mb: float
  launcher_rss_mb: float
  worker_cpu_seconds: float  # user + system, all worker processes together
  launcher_cpu_seconds: float
  cluster_cpu_seconds: float = 0.0  # b_flink: the cluster's JVMs (JobManager, TaskManager, job server)


def warm(variant: str, model: str, dataset: data.DataSet) -> None:
  """Reads the variant's input, the model and the libraries, so that every run starts with them in the page cache.

  Hosts that page out memory left idle for a while (DAMON reclaim, ballooning) otherwise hand a run whichever
  part of its files the last minutes left cached, and a CPU benchmark measures the disk instead.
  """
  for path in registry.warm_files(variant, model, dataset):
    with open(path, 'rb') as f:
      while f.read(1 << 20):
        pass


def run_once(variant: str, task: str, model: str, dataset: data.DataSet) -> Run:
  """Runs one variant as its own command; fails unless it produced a row for every image."""
  scratch = tempfile.mkdtemp(prefix=f'bench_{variant}_')
  output = os.path.join(scratch, 'out')
  command = registry.command(variant, task, model, dataset, output)  # a peer's virtualenv is made here if missing
  warm(variant, model, dataset)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
  cluster = flink.ACTIVE if variant == 'b_flink' else None
  more_workers = lambda: ()  # pylint: disable=unnecessary-lambda-assignment
  if cluster:  # the SDK workers the TaskManager starts for this run (an earlier run's may linger, idle)
    earlier, cluster_cpu = cluster.worker_pids(), cluster.cluster_cpu()
    more_workers = lambda: [w for w in cluster.workers() if w.pid not in earlier]  # pylint: disable=unnecessary-lambda-assignment
  try:
    stdout, seconds, sampler = run_sampled(variant, command, env, scratch, more_workers)
    rows = registry.rows(variant, output, stdout)
    if rows != dataset.count:
      raise RuntimeError(f'{variant} wrote {rows} rows for {dataset.count} images')
    return measured(rows, seconds, sampler, cluster.cluster_cpu() - cluster_cpu if cluster else 0.0)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def run_sampled(name: str, command: List[str], env: dict, scratch: str, more_workers=lambda: ()):
  """(stdout, seconds, the PeakSampler) of the command run to its end; raises with its stderr if it failed."""
  with open(os.path.join(scratch, 'stderr'), 'w+', encoding='utf-8') as stderr:
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=shared.ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    sampler = PeakSampler(proc.pid, more_workers)
    sampler.start()
    stdout, _ = proc.communicate()
    seconds = time.monotonic() - start
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
      stderr.seek(0)
      raise RuntimeError(f'{name} failed ({proc.returncode}):\n{stderr.read()[-3000:]}')
  return stdout, seconds, sampler


def measured(rows: int, seconds: float, sampler: PeakSampler, cluster_cpu: float) -> Run:
  """A run's figures from its sampler; cluster_cpu: the seconds of the processes beside the command."""
  return Run(rows, round(seconds, 3), round(max(sampler.children.values(), default=0) / MB, 1),
             round(sampler.launcher / MB, 1), round(sum(sampler.children_cpu.values()), 2),
             round(sampler.launcher_cpu, 2), round(cluster_cpu, 2))


def save(report: dict, prog: str, argv: Optional[Sequence[str]], started: float, json_path: str) -> None:
  """The report's command line and seconds, and the report into json_path (every benchmark's --json)."""
  report['command'] = ' '.join([prog] + list(argv if argv is not None else sys.argv[1:]))
  report['seconds'] = round(time.monotonic() - started, 1)
  pathlib.Path(json_path).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(json_path).write_text(json.dumps(report, indent=2, default=str), encoding='utf-8')


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
      'end_to_end_images_per_second': round(images / seconds, 3),  # 3 decimals: 4 images in 100 s is not 0
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


def machine(variants: Sequence[str] = ()) -> dict:
  cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo', encoding='ascii')
              if line.startswith('model name')), platform.processor())
  return {
      'cores': os.cpu_count(),
      'cpu': cpu,
      'memory_gb': round(psutil.virtual_memory().total / (1 << 30), 1),
      'python': platform.python_version(),
      **{name: metadata.version(name) for name in registry.VERSIONS},
      **registry.framework_versions(variants),
  }


PEERS = ('d', 'd_binary', 'e', 'e_pandas_udf')
PAIRS = (('b', 'a'), ('b', 'c'), ('b_tfrecord', 'a'), ('b_tfrecord', 'c'), ('b_parquet', 'b_tfrecord'),
         ('b_flink', 'b')) + tuple(
    ('b', peer) for peer in PEERS)
# Pairs whose sides split the work differently between the command's own process and the rest: Beam's launcher is
# the runner's side of the data plane, Ray's and Spark's drivers only plan, Flink's JVMs are neither.
ALL_PROCESSES = (('b_flink', 'b'),) + tuple(('b', peer) for peer in PEERS)


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
  for top, bottom in ALL_PROCESSES:  # every process's CPU: the launcher's too, and Flink's JVMs
    if top in results and bottom in results:
      every = {v: results[v]['worker_cpu_ms_per_image'] + results[v]['launcher_cpu_ms_per_image'] +
               results[v].get('cluster_cpu_ms_per_image', 0) for v in (top, bottom)}
      ratios[f'{top}/{bottom} per core, all processes'] = (round(every[bottom] / every[top], 2) if every[top] > 0
                                                            else None)
  return ratios


def benchmark(images: int, small_images: int, repeats: int, large_images: Optional[int], configs: Sequence[str],
              variants: Sequence[str], data_dir: pathlib.Path = data.ROOT, log=print) -> dict:
  sizes = (images, small_images) if small_images else (images,)  # small_images 0: no start-up runs
  counts = set(sizes) | ({large_images} if large_images else set())
  sets = {count: data.make(count, data_dir) for count in counts}
  runs: Dict[tuple, List[Run]] = {}
  registry.prepare(variants)  # the peers' virtualenvs, made (once) before anything is timed
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
  report = {'machine': machine(variants), 'images': images, 'small_images': small_images, 'repeats': repeats,
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


FULL = {'images': 5000, 'small_images': None, 'repeats': 3, 'large_images': None, 'configs': ','.join(CONFIGS),
        'variants': ','.join(DEFAULT_VARIANTS), 'json': str(data.ROOT / 'throughput.json')}
# --quick: the main ratios (b against a, c, d, e) in a few minutes on 2 cores, the peers' virtualenvs made: one
# configuration, one run of each variant at two sizes (so that the rates and CPU per image are marginal).
QUICK = {'images': 2000, 'small_images': 400, 'repeats': 1, 'large_images': 0, 'configs': 'classify_tflite',
         'variants': 'a,b,c,d,e', 'json': str(data.ROOT / 'throughput-quick.json')}


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.throughput', description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true',
                      help=f'the main ratios in a few minutes: {" ".join(f"--{k} {v}" for k, v in QUICK.items())} '
                      '(each can still be given)')
  parser.add_argument('--images', type=int, help=f'images per measured run (default {FULL["images"]})')
  parser.add_argument('--small_images', type=int,
                      help='images of the runs that measure start-up (default: images / 10); 0: no such runs, '
                      'end-to-end rates only')
  parser.add_argument('--repeats', type=int, help=f'default {FULL["repeats"]}')
  parser.add_argument('--large_images', type=int,
                      help='also run every variant once on this many images: end-to-end rates and workers\' peak RSS '
                      'at a larger size (absent or 0: no such pass)')
  parser.add_argument('--configs', help=f'comma-separated, of {", ".join(CONFIGS)} (default all)')
  parser.add_argument('--variants', help=f'comma-separated, of {", ".join(VARIANTS)} (default {FULL["variants"]})')
  parser.add_argument('--data_dir', default=str(data.ROOT), help='where the generated images are cached')
  parser.add_argument('--json', help=f'where the full results go (default {FULL["json"]}, with --quick '
                      f'{QUICK["json"]})')
  args = parser.parse_args(argv)
  for name, value in (QUICK if args.quick else FULL).items():
    if getattr(args, name) is None:
      setattr(args, name, value)
  configs, variants = args.configs.split(','), args.variants.split(',')
  unknown = sorted(set(configs) - set(CONFIGS) | set(variants) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown configurations or variants: {", ".join(unknown)}')
  small = max(1, args.images // 10) if args.small_images is None else args.small_images
  started = time.monotonic()
  report = benchmark(args.images, small, args.repeats, args.large_images, configs, variants, pathlib.Path(args.data_dir),
                     log=lambda line: print(line, file=sys.stderr, flush=True))
  report['command'] = ' '.join(['python -m benchmarks.throughput'] + list(argv if argv is not None else sys.argv[1:]))
  report['seconds'] = round(time.monotonic() - started, 1)
  os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
  with open(args.json, 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2)
  print(markdown(report))
  print('\n' + headline(report))
  print(f'\n({report["seconds"]:.0f} s; load average {" ".join(f"{x:.1f}" for x in os.getloadavg())} at the end)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
