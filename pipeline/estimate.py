"""python -m pipeline.estimate JOB_OPTIONS [--sample 500] [--workers W] [--cores C]: a big job's cost, measured.

Matches the job's inputs (up to --listing_limit files: past it the count is
extrapolated from the listed files' share of bytes, and says so), runs the
real job on this machine on two evenly spaced samples of the inputs (a fifth
of --sample, then --sample: the difference separates the start-up from the
rate), watching its worker processes' memory, and projects the wall time and
core-hours of the whole input on W workers of C cores. It writes nothing under
the job's --output: the sample runs write to a temporary folder, removed after.
Containers (TFRecord, tar shards) are sampled by whole shards, their records
counted from the run and projected by bytes.
"""
import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import psutil
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import command_line, local_defaults, logs, options
from transforms.infer import models
from transforms.read import match, plan
from transforms.read.formats import detect

PROG = 'python -m pipeline.estimate'
DEFAULT_SAMPLE = 500
DEFAULT_LISTING_LIMIT = 1_000_000
_DROPPED = ('--output', '--overwrite', '--resume', '--estimate', '--report', '--noreport')


def parse(argv: Sequence[str]) -> Tuple[argparse.Namespace, List[str]]:
  """(the estimate's own options, the job's options); raises OptionsError."""
  parser = argparse.ArgumentParser(prog=PROG, add_help=False)
  parser.add_argument('--sample', type=int, default=DEFAULT_SAMPLE, help='inputs run for the measurement')
  parser.add_argument('--workers', type=int, default=1, help='worker machines of the projected job')
  parser.add_argument('--cores', type=int, default=os.cpu_count(), help='cores per worker machine')
  parser.add_argument('--listing_limit', type=int, default=DEFAULT_LISTING_LIMIT,
                      help='files listed at most; past it the count is extrapolated')
  own, job = parser.parse_known_args(argv)
  for name in ('sample', 'workers', 'cores', 'listing_limit'):
    if getattr(own, name) < 1:
      raise options.OptionsError(f'--{name} must be positive, not {getattr(own, name)}')
  command_line.check_known(job, PROG, own=['--sample', '--workers', '--cores', '--listing_limit'])
  kept, skip = [], False
  for arg in job:  # the sample runs write elsewhere, without a report
    if skip:
      skip = False
      continue
    name = arg.split('=', 1)[0]
    if name in _DROPPED:
      skip = name == '--output' and '=' not in arg
      continue
    kept.append(arg)
  return own, kept


def list_inputs(input_plan: plan.InputPlan, limit: int) -> Tuple[List[match.FileRef], bool]:
  """(up to `limit` files the inputs name, whether that is all of them)."""
  refs = itertools.islice((ref for pattern, fmt in input_plan.inputs for ref in match.expand(pattern, fmt)),
                          limit + 1)
  listed = list({ref.path: ref for ref in refs}.values())
  return listed[:limit], len(listed) <= limit


def _size(ref: match.FileRef) -> int:
  if ref.size is not None:
    return ref.size
  found = FileSystems.match([ref.path])[0].metadata_list
  return found[0].size_in_bytes if found else 0


class PeakMemory:
  """Peak RSS of each worker process (this process's descendants), polled while the sample runs."""

  def __init__(self, every: float = 0.2):
    self.peaks: Dict[int, int] = {}
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._poll, args=(every,), daemon=True)

  def _poll(self, every: float) -> None:
    me = psutil.Process()
    while not self._stop.wait(every):
      for child in me.children(recursive=True):
        try:
          self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), child.memory_info().rss)
        except psutil.Error:
          pass

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *_):
    self._stop.set()
    self._thread.join()


def _run_sample(job_argv: List[str], files: Sequence[match.FileRef], workdir: str, name: str) -> dict:
  """Runs the real job on `files` into workdir; its summary, wall time and memory. Local files are given as a
  folder of links to them (read as a folder is: a .txt list of URIs reads slower), others as a .txt list."""
  from pipeline import run  # pylint: disable=import-outside-toplevel  # the job itself
  sample = os.path.join(workdir, f'{name}_inputs')
  paths = [ref.path if '://' in ref.path else os.path.abspath(ref.path) for ref in files]  # --input may be relative
  if all(os.path.isabs(path) for path in paths):
    os.makedirs(sample)
    for i, path in enumerate(paths):
      os.symlink(path, os.path.join(sample, f'{i:09d}_{os.path.basename(path)}'))
  else:
    sample += '.txt'
    with open(sample, 'w', encoding='utf-8') as f:
      f.write(''.join(path + '\n' for path in paths))
  argv = _without_value(job_argv, '--input') + ['--input', sample, '--output', os.path.join(workdir, name),
                                                 '--noreport']
  with PeakMemory() as memory:
    summary = run.run(argv)
  # The job's own wall time, as summary.json counts it (submission to end): the launcher's checks before it
  # are paid once, cold, by the first sample only, and would read as start-up the full job does not have.
  return {'wall': summary['wall_seconds'], 'summary': summary, 'peak_rss': max(memory.peaks.values(), default=0)}


def _without_value(argv: List[str], flag: str) -> List[str]:
  out, skip = [], False
  for arg in argv:
    if skip:
      skip = False
    elif arg == flag:
      skip = True
    elif not arg.startswith(flag + '='):
      out.append(arg)
  return out


def _evenly(files: Sequence, n: int) -> List:
  if n >= len(files):
    return list(files)
  return [files[i * len(files) // n] for i in range(n)]


def estimate(argv: Sequence[str]) -> dict:
  own, job_argv = parse(argv)
  pipeline_options = PipelineOptions(job_argv + ['--output', tempfile.gettempdir()])
  local_defaults.apply(job_argv, pipeline_options)
  config = options.validate(pipeline_options)
  input_plan = options.plan_inputs(config)
  files, complete = list_inputs(input_plan, own.listing_limit)
  containers = any(fmt != detect.IMAGES for _, fmt in input_plan.inputs)
  sizes = {ref.path: _size(ref) for ref in files} if containers or not complete else {}
  cores_here = local_defaults.local_workers(pipeline_options) or os.cpu_count()
  workdir = tempfile.mkdtemp(prefix='estimate-')
  try:
    if containers:  # a shard is one unit whatever the sample
      small = _run_sample(job_argv, files[:1], workdir, 'small')
      large = _run_sample(job_argv, files[:max(1, min(len(files), own.sample // 100))], workdir, 'large')
    else:
      small, large = (_run_sample(job_argv, chosen, workdir, name)  # units of --files_per_unit, as the job's
                      for name, chosen in (('small', _evenly(files, max(1, own.sample // 5))),
                                           ('large', _evenly(files, own.sample))))
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  n1, n2 = (s['summary']['records_read'] for s in (small, large))
  rate = (n2 - n1) / (large['wall'] - small['wall']) if n2 > n1 and large['wall'] > small['wall'] else \
      n2 / large['wall']
  startup = max(0.0, small['wall'] - n1 / rate)
  if containers:  # records per byte from the sample's shards
    sampled_bytes = sum(sizes[ref.path] for ref in files[:max(1, min(len(files), own.sample // 100))])
    total = n2 * sum(sizes.values()) / max(sampled_bytes, 1)
  else:
    total = float(len(files))
  extrapolation = None
  if not complete:  # the listing stopped: assume the rest is like what was listed
    extrapolation = (f'the listing stopped at {own.listing_limit:,} files; the total is a lower bound, '
                     'extrapolate by how much of the input they are')
  per_core = rate / cores_here
  wall = startup + total / (per_core * own.workers * own.cores)
  errors = large['summary']['errors']
  return {
      'inputs_matched': len(files), 'listing_complete': complete, 'extrapolation': extrapolation,
      'records_total': round(total), 'records_sampled': n2, 'sample_wall_seconds': round(large['wall'], 2),
      'startup_seconds': round(startup, 2), 'images_per_second': round(rate, 2),
      'images_per_second_per_core': round(per_core, 2), 'cores_measured': cores_here,
      'peak_rss_per_worker_mb': round(max(small['peak_rss'], large['peak_rss']) / 2**20),
      'error_share': round(errors / n2, 4) if n2 else None,
      'workers': own.workers, 'cores_per_worker': own.cores,
      'projected_wall_seconds': round(wall, 1), 'projected_core_hours': round(total / per_core / 3600, 3),
  }


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  if command_line.wants_help(argv):
    print(__doc__)
    return 0
  logs.configure()
  try:
    result = estimate(argv)
  except (options.OptionsError, plan.InputError, models.ModelError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(result, indent=2))
  print(f'estimate: {result["records_total"]:,} images at {result["images_per_second_per_core"]} images/s per core '
        f'(peak {result["peak_rss_per_worker_mb"]} MB per worker, {result["error_share"]:.1%} errors in the sample): '
        f'{result["projected_wall_seconds"] / 60:.1f} min on {result["workers"]} x {result["cores_per_worker"]} '
        f'cores, {result["projected_core_hours"]} core-hours', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
