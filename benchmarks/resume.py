"""Resume at scale: `python -m benchmarks.resume` (docs/benchmarks.md, "Resume").

For each N (default 20,000 and 200,000) it makes N one-pixel PNG records, half
as TFRecord shards and half as WebDataset tar shards (RECORDS_PER_SHARD each),
runs the job over both to completion, then runs it again with --resume over the
complete output, and prints for each: the wall time of both runs, the records
the resume read (Beam's read counter, and the summary's redone_records), the
units it skipped, and the peak resident memory (VmHWM) of each run's worker
processes, launcher and largest process. The targets (issue 19): the resume's peak RSS per worker
grows by at most 10% from the smallest N to the largest (issue 30: the largest process's by at most 20%), a
resume over a complete output reads no record, and its wall time is under a tenth of the full run's.
"""
import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from typing import List, Optional, Sequence

from PIL import Image

from benchmarks import shared
from benchmarks.throughput import MB, run_sampled
from transforms.read.formats import tf_example, tfrecord, webdataset

RECORDS_PER_SHARD = 5000  # a TFRecord shard (under 1 MiB: one range, one unit) or a tar shard: one unit each
MODEL = shared.MODELS / 'tflite' / 'mobilenet_v1_0.25_128_quant.tflite'  # the cheapest model: the runs stay short
SIZES = (20_000, 200_000)


def one_pixel_png(i: int) -> bytes:
  buffer = io.BytesIO()
  Image.new('RGB', (1, 1), (i % 256, (i // 256) % 256, 7)).save(buffer, 'PNG')
  return buffer.getvalue()


def make(count: int, root: str) -> str:
  """count records, the first half as TFRecord shards and the rest as tar shards; returns the --input value."""
  half = count // 2
  for fmt, first, last in (('tfrecord', 0, half), ('tar', half, count)):
    os.makedirs(os.path.join(root, fmt), exist_ok=True)
    for shard, start in enumerate(range(first, last, RECORDS_PER_SHARD)):
      ids = [f'r{i:09d}' for i in range(start, min(start + RECORDS_PER_SHARD, last))]
      with open(os.path.join(root, fmt, f'shard-{shard:05d}.{fmt}'), 'wb') as out:
        if fmt == 'tfrecord':
          for i, key in zip(range(start, last), ids):
            out.write(tfrecord.encode_record(tf_example.make_example(one_pixel_png(i), key, key + '.png', 'png')))
        else:
          writer = webdataset.ShardWriter(out, False)
          for i, key in zip(range(start, last), ids):
            writer.add(key, {'png': one_pixel_png(i)})
          writer.close()
  return f'{root}/tfrecord/*.tfrecord,{root}/tar/*.tar'


def timed(command: List[str]) -> dict:
  """Runs the job; its summary, wall time and peak RSS per worker and of the launcher."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
  scratch = tempfile.mkdtemp(prefix='bench_resume_run_')
  try:
    stdout, seconds, sampler = run_sampled('the job', command, env, scratch)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  return {'summary': json.loads(stdout), 'seconds': round(seconds, 1),
          'worker_rss_mb': round(max(sampler.children.values(), default=0) / MB, 1),
          'launcher_rss_mb': round(sampler.launcher / MB, 1),
          'largest_rss_mb': round(max([sampler.launcher] + list(sampler.children.values())) / MB, 1)}


def measure(count: int, scratch: str) -> dict:
  source = make(count, os.path.join(scratch, 'data'))
  out = os.path.join(scratch, 'out')
  command = [sys.executable, '-m', 'pipeline', '--input', source, '--output', out, '--model', str(MODEL),
             '--task', 'classify']
  load = os.getloadavg()[0]
  full = timed(command)
  resume = timed(command + ['--resume'])
  summary = resume['summary']
  assert summary['accounted'] and summary['records_read'] == count, summary
  return {'records': count, 'load_average': round(load, 2), 'full_seconds': full['seconds'],
          'full_worker_rss_mb': full['worker_rss_mb'], 'resume_seconds': resume['seconds'],
          'resume_records_read': sum(summary.get('records_read_by_worker', [])),
          'resume_redone_records': summary['resumed']['redone_records'],
          'resume_skipped_units': summary['resumed']['skipped_units'],
          'resume_worker_rss_mb': resume['worker_rss_mb'], 'resume_launcher_rss_mb': resume['launcher_rss_mb'],
          'resume_largest_rss_mb': resume['largest_rss_mb']}


COLUMNS = (('records', 'N'), ('load_average', 'load'), ('full_seconds', 'full run s'),
           ('resume_seconds', 'resume s'), ('resume_records_read', 'records read by resume'),
           ('resume_skipped_units', 'units skipped'), ('resume_worker_rss_mb', 'resume peak RSS/worker MB'),
           ('resume_launcher_rss_mb', 'resume launcher MB'), ('resume_largest_rss_mb', 'resume largest process MB'),
           ('full_worker_rss_mb', 'full run peak RSS/worker MB'))


def table(results: Sequence[dict]) -> str:
  lines = ['| ' + ' | '.join(title for _, title in COLUMNS) + ' |', '|' + ' --- |' * len(COLUMNS)]
  lines += ['| ' + ' | '.join(f'{r[key]:,}' if isinstance(r[key], int) else str(r[key]) for key, _ in COLUMNS)
            + ' |' for r in results]
  return '\n'.join(lines)


def verdicts(results: Sequence[dict]) -> dict:
  small, large = results[0], results[-1]
  return {
      'rss_growth': round(large['resume_worker_rss_mb'] / small['resume_worker_rss_mb'] - 1, 3),
      'rss_growth_at_most_10%': large['resume_worker_rss_mb'] <= 1.1 * small['resume_worker_rss_mb'],
      'largest_process_growth': round(large['resume_largest_rss_mb'] / small['resume_largest_rss_mb'] - 1, 3),
      'largest_process_growth_at_most_20%': large['resume_largest_rss_mb'] <= 1.2 * small['resume_largest_rss_mb'],
      'resume_reads_no_record': all(r['resume_records_read'] == r['resume_redone_records'] == 0 for r in results),
      'resume_under_a_tenth': large['resume_seconds'] < large['full_seconds'] / 10,
  }


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.resume', description=__doc__.split('\n\n')[0])
  parser.add_argument('--sizes', default=','.join(str(n) for n in SIZES), help='record counts, comma-separated')
  args = parser.parse_args(argv)
  shared.require_shared()
  results = []
  for count in (int(n) for n in args.sizes.split(',')):
    scratch = tempfile.mkdtemp(prefix=f'bench_resume_{count}_')
    try:
      results.append(measure(count, scratch))
      print(json.dumps(results[-1]), flush=True)
    finally:
      shutil.rmtree(scratch, ignore_errors=True)
  print(table(results))
  print(json.dumps(verdicts(results), indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
