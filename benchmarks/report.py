"""Time and peak memory of `python -m pipeline.report` on a large synthetic output (docs/benchmarks.md).

  .venv/bin/python -m benchmarks.report --rows 1000000

makes (once, under bench_data/report_ROWS/) an output as the job writes it for
--task both: Parquet shards of predictions with ImageNet labels in a Zipf-like
distribution, scores, 512-value embeddings and row groups of Beam's size, 1%
error rows, summary.json and job.json; the sources point at 60 real JPEGs so
that the thumbnails are read. It then runs the report in a child process and
prints its wall time and peak RSS (the child's own VmHWM, sampled).
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import sampler, shared

ROWS_PER_SHARD = 250_000
ROW_GROUP_ROWS = 30_000  # about Beam's 64 MB row groups with 512-value embeddings
SOURCES = 60


def make_output(root: pathlib.Path, rows: int, dims: int = 512, seed: int = 0) -> pathlib.Path:
  """A finished job output of `rows` rows (+1% error rows) under root; made once."""
  if (root / 'summary.json').exists():
    return root
  rng = np.random.default_rng(seed)
  labels = shared.LABELS.read_text().splitlines()
  images = root / 'images'
  images.mkdir(parents=True, exist_ok=True)
  photos = shared.photo_paths()
  from PIL import Image  # pylint: disable=import-outside-toplevel
  sources = []
  for i in range(SOURCES):
    path = images / f'{i:03d}.jpg'
    shared.variant(Image.open(photos[i % len(photos)]).convert('RGB'), rng, (300, 225)).save(path, quality=85)
    sources.append(str(path))
  (root / 'predictions').mkdir(exist_ok=True)
  parts = []
  weights = 1.0 / np.arange(1, len(labels) + 1)
  weights /= weights.sum()
  for shard, start in enumerate(range(0, rows, ROWS_PER_SHARD)):
    n = min(ROWS_PER_SHARD, rows - start)
    classes = np.sort(rng.choice(len(labels), size=(n, 5), p=weights), axis=1)
    scores = np.sort(rng.dirichlet(np.ones(6) * 0.6, size=n)[:, :5], axis=1)[:, ::-1].astype(np.float32)
    table = pa.table({
        'id': pa.array([f'img_{start + i:09d}' for i in range(n)]),
        'source': pa.array([sources[(start + i) % SOURCES] for i in range(n)]),
        'width': pa.array(np.full(n, 500, np.int32)), 'height': pa.array(np.full(n, 375, np.int32)),
        'model': pa.array(['synthetic'] * n),
        'top_classes': pa.FixedSizeListArray.from_arrays(pa.array(classes.ravel().astype(np.int32)), 5).cast(
            pa.list_(pa.int32())),
        'top_labels': pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(labels, object)[classes.ravel()]),
                                                        5).cast(pa.list_(pa.string())),
        'top_scores': pa.FixedSizeListArray.from_arrays(pa.array(scores.ravel()), 5).cast(pa.list_(pa.float32())),
        'embedding': pa.FixedSizeListArray.from_arrays(  # fixed-size, as the job writes it (docs/output.md)
            pa.array(rng.standard_normal(n * dims, dtype=np.float32)), dims),
    })
    parts.append(f'part-bench-{shard:05d}.parquet')
    pq.write_table(table, root / 'predictions' / parts[-1], row_group_size=ROW_GROUP_ROWS)
  errors = rows // 100
  stages = rng.choice(['read', 'decode', 'infer'], size=errors, p=[0.2, 0.7, 0.1])
  (root / 'errors').mkdir(exist_ok=True)
  pq.write_table(pa.table({
      'id': pa.array([f'bad_{i:09d}' for i in range(errors)]), 'source': pa.array([f'/data/bad_{i}.jpg' for i in
                                                                                  range(errors)]),
      'stage': pa.array(stages), 'error_type': pa.array(['DecodeError'] * errors),
      'message': pa.array(['not an image'] * errors)}), root / 'errors' / 'part-bench-00000.parquet')
  (root / 'manifest.json').write_text(json.dumps({'predictions': parts, 'errors': ['part-bench-00000.parquet']}))
  (root / 'job.json').write_text(json.dumps({'input': '/data/*', 'model': 'synthetic', 'task': 'both'}))
  (root / 'summary.json').write_text(json.dumps({
      'records_read': rows + errors, 'rows_written': rows, 'errors': errors, 'accounted': True,
      'errors_by_stage': {s: int((stages == s).sum()) for s in ('read', 'decode', 'infer')}}))
  return root


def run_child(argv) -> dict:
  """Runs `python ARGV` in a child process: its wall and CPU seconds (wait4) and peak RSS. The peak is the
  child's own VmHWM, sampled (benchmarks/sampler.py): wait4's ru_maxrss also holds the RSS of the forked copy of
  this process before exec, which is large once make_output has run here."""
  start = time.monotonic()
  child = subprocess.Popen([sys.executable] + list(argv), cwd=shared.ROOT)  # pylint: disable=consider-using-with
  peak = sampler.PeakSampler(child.pid)
  peak.start()
  _, status, usage = os.wait4(child.pid, 0)
  wall = time.monotonic() - start
  peak.done.set()
  peak.join()
  child.returncode = os.waitstatus_to_exitcode(status)
  if child.returncode:
    raise RuntimeError(f'{argv[:2]} failed with exit code {child.returncode}')
  return {'wall_seconds': round(wall, 2), 'peak_rss_mb': round(peak.launcher / 2**20), 'cpu_seconds':
          round(usage.ru_utime + usage.ru_stime, 2), 'cores': os.cpu_count()}


def measure(output: pathlib.Path, page: pathlib.Path) -> dict:
  """Runs the report in a child process: wall seconds and the child's peak RSS."""
  result = run_child(['-m', 'pipeline.report', str(output), '--output', str(page)])
  return dict(result, page_kb=round(page.stat().st_size / 1024))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.report', description=__doc__.split('\n')[0])
  parser.add_argument('--rows', type=int, default=1_000_000)
  parser.add_argument('--dims', type=int, default=512, help='embedding size')
  parser.add_argument('--data', default=str(shared.ROOT / 'bench_data'))
  args = parser.parse_args(argv)
  root = pathlib.Path(args.data) / f'report_v2_{args.rows}_{args.dims}'  # v2: the output schema's version
  started = time.monotonic()
  make_output(root, args.rows, args.dims)
  print(f'data: {root} ({time.monotonic() - started:.0f} s to make or find)', flush=True)
  result = dict(rows=args.rows, dims=args.dims, **measure(root, root.parent / f'report_{args.rows}.html'))
  print(json.dumps(result))
  return 0


if __name__ == '__main__':
  sys.exit(main())
