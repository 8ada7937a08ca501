"""Planning at scale: the job over N tiny files, locally and on gs://, for how its memory and first commit grow
with N.

`python -m benchmarks.planning [--files 20000,200000] [--gcs_files 20000] [--repeats 1]
[--unit_images 0]`

Each file is a few junk bytes named .jpg: each becomes a decode error row, so a
run costs listing, planning and writing, not the model (as issue 30 measured).
Per N and place (disk; gs:// on fake-gcs-server, benchmarks/gcs_server.py, in buckets of PER_BUCKET files, one glob each, no
added latency), reported: the whole command's seconds, the seconds until the
first read unit is committed (its marker appears under _units/, polled every
0.1 s) and until the workers' counts say the listing is done (every listing
shard listed: the first unit should come well before), the peak RSS of the largest process (launcher or worker) and of the
launcher, and the growth of the first from the smallest N.

--unit_images M (e.g. 100000) adds the unit-size check: M tiny real JPEGs (8x8) with
`--task both`, once as one unit (--files_per_unit M) and once in units of about
1,000, and reports the peak RSS per worker of each.
Everything goes to --json.
"""
import argparse
import glob
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence

from benchmarks import data, gcs_server, shared
from benchmarks.throughput import MB, machine, run_sampled, save

JUNK = b'not a jpeg'
PER_FOLDER = 1000  # files per sub-folder of the data set
BUCKET = 'planning'
PER_BUCKET = 2000  # tiny files per emulator bucket (gcs_seed)
GCS_FILES_PER_UNIT = 25  # on gs://: a bucket's 2,000 files exceed LISTING_SHARDS x 25, so it is split by probes


def tiny_files(count: int, root: pathlib.Path = data.ROOT) -> pathlib.Path:
  """A folder of `count` junk .jpg files in sub-folders of PER_FOLDER (made once, kept)."""
  folder = root / f'planning-{count}'
  done = folder / '.complete'
  if not done.exists():
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(count):
      sub = folder / f'{i // PER_FOLDER:05d}'
      if i % PER_FOLDER == 0:
        sub.mkdir(parents=True)
      (sub / f'{i:08d}.jpg').write_bytes(JUNK)
    done.write_text('')
  return folder


def tiny_images(count: int, root: pathlib.Path = data.ROOT) -> pathlib.Path:
  """A folder of `count` copies of one 8x8 JPEG (made once, kept), for units of many images at little CPU."""
  import io  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  folder = root / f'tiny-images-{count}'
  done = folder / '.complete'
  if not done.exists():
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    jpeg = io.BytesIO()
    Image.new('RGB', (8, 8), (200, 120, 40)).save(jpeg, 'JPEG')
    for i in range(count):
      (folder / f'{i:08d}.jpg').write_bytes(jpeg.getvalue())
    done.write_text('')
  return folder


def gcs_seed(counts: Sequence[int]) -> pathlib.Path:
  """A folder fake-gcs-server loads at start (gcs_server.fake_gcs_server(seed)): per N, N // PER_BUCKET
  buckets of PER_BUCKET tiny files. The emulator keeps a bucket's objects in a list it searches on every insert,
  so loading one bucket of N objects costs N^2 (20,000 took 3 minutes here): no emulator here holds 200,000 in
  one bucket."""
  seed = data.ROOT / 'gcs-seed'
  shutil.rmtree(seed, ignore_errors=True)
  for count in counts:
    for bucket in gcs_buckets(count):
      tiny_files(PER_BUCKET, seed / bucket)
  return seed


def gcs_buckets(count: int) -> List[str]:
  return [f'{BUCKET}-{count}-{i:03d}' for i in range(max(1, count // PER_BUCKET))]


def gcs_input(count: int) -> str:
  """The --input of N files on gs://: one glob per bucket."""
  return ','.join(f'gs://{bucket}/planning-{PER_BUCKET}' for bucket in gcs_buckets(count))


class _FirstMarker(threading.Thread):
  """The seconds from `start` until the first file appears in the output's _units/ (local output), and until
  the workers' progress counts (the launcher's progress folder, under `scratch`) say every listing shard is
  listed."""

  def __init__(self, output: str, scratch: str, start: float):
    super().__init__(daemon=True)
    self._units, self._scratch, self._start = os.path.join(output, '_units'), scratch, start
    self.seconds: Optional[float] = None
    self.listed_seconds: Optional[float] = None
    self.done = threading.Event()

  def _listed(self) -> bool:
    from pipeline import live_progress  # pylint: disable=import-outside-toplevel
    for folder in glob.glob(os.path.join(self._scratch, 'image-inference-progress-*')):
      counts = live_progress.folder_counts(folder)
      if counts.get('inputs_split') and counts.get('shards_listed', 0) >= counts.get('listing_shards', 0):
        return True
    return False

  def run(self):
    while not self.done.wait(0.1):
      now = round(time.monotonic() - self._start, 2)
      if self.seconds is None and os.path.isdir(self._units) and any(
          n.endswith('.json') for n in os.listdir(self._units)):
        self.seconds = now
      if self.listed_seconds is None and self._listed():
        self.listed_seconds = now
      if self.seconds is not None and self.listed_seconds is not None:
        return


def run_once(source: str, env: dict, extra: Sequence[str] = ()) -> dict:
  scratch = tempfile.mkdtemp(prefix='bench_planning_')
  output = os.path.join(scratch, 'out')
  command = [sys.executable, '-m', 'pipeline', '--input', source, '--output', output, '--model',
             str(shared.TFLITE_QUANT), '--task', 'classify', '--labels_file', str(shared.LABELS), '--noreport',
             '--no_auth', *extra]
  try:
    start = time.monotonic()
    first = _FirstMarker(output, scratch, start)
    first.start()
    stdout, seconds, sampler = run_sampled('planning', command, dict(env, TMPDIR=scratch), scratch)
    first.done.set()
    first.join()
    summary = json.loads(stdout)
    largest = max([sampler.launcher] + list(sampler.children.values()))
    return {'seconds': round(seconds, 2), 'first_unit_seconds': first.seconds, 'listed_seconds': first.listed_seconds,
            'records': summary['records_read'], 'errors': summary['errors'], 'accounted': summary['accounted'],
            'largest_process_peak_rss_mb': round(largest / MB, 1),
            'launcher_peak_rss_mb': round(sampler.launcher / MB, 1),
            'worker_peak_rss_mb': round(max(sampler.children.values(), default=0) / MB, 1)}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _growth(rows: List[dict]) -> None:
  base = rows[0]['largest_process_peak_rss_mb']
  for row in rows:
    row['peak_rss_growth'] = round(row['largest_process_peak_rss_mb'] / base, 3)


def measure(counts: Sequence[int], gcs_counts: Sequence[int], repeats: int, unit_images: int, log=print,
            gcs_files_per_unit: int = GCS_FILES_PER_UNIT) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT))
  report = {'machine': machine([]), 'repeats': repeats, 'disk': [], 'gcs': [], 'unit_size': []}
  for count in counts:
    for repeat in range(repeats):
      got = dict(run_once(str(tiny_files(count)), env), files=count, repeat=repeat)
      log(f'disk {count} files: {got}')
      report['disk'].append(got)
  gcs_extra = ['--files_per_unit', str(gcs_files_per_unit)]
  if gcs_counts:
    with gcs_server.fake_gcs_server(gcs_seed(gcs_counts)) as server:
      for count in gcs_counts:
        for repeat in range(repeats):
          got = dict(run_once(gcs_input(count), dict(env, STORAGE_EMULATOR_HOST=server.endpoint), gcs_extra),
                     files=count,
                     repeat=repeat)
          log(f'gcs {count} files: {got}')
          report['gcs'].append(got)
  for rows in (report['disk'], report['gcs']):
    if rows:
      _growth(rows)
  if unit_images:
    images = str(tiny_images(unit_images))
    for per_unit in (unit_images, 1000):
      got = dict(run_once(images, env, ['--task', 'both', '--files_per_unit', str(per_unit)]), images=unit_images,
                 files_per_unit=per_unit)
      log(f'unit size: {got}')
      report['unit_size'].append(got)
  return report


def markdown(report: dict) -> str:
  lines = ['| where | files | seconds | first unit committed at | listing done at | largest process peak RSS | '
           'growth | launcher |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for where in ('disk', 'gcs'):
    for r in report[where]:
      lines.append(f'| {where} | {r["files"]:,} | {r["seconds"]:.1f} s | {r["first_unit_seconds"]} s | '
                   f'{r["listed_seconds"]} s | '
                   f'{r["largest_process_peak_rss_mb"]:,.0f} MB | {r["peak_rss_growth"]:.2f} | '
                   f'{r["launcher_peak_rss_mb"]:,.0f} MB |')
  if report['unit_size']:
    lines += ['', '| images | --files_per_unit | seconds | peak RSS per worker |', '| ---: | ---: | ---: | ---: |']
    for r in report['unit_size']:
      lines.append(f'| {r["images"]:,} | {r["files_per_unit"]:,} | {r["seconds"]:.1f} s | '
                   f'{r["worker_peak_rss_mb"]:,.0f} MB |')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.planning', description=__doc__.split('\n')[0])
  parser.add_argument('--files', default='20000,200000', help='N of the local runs, comma-separated')
  parser.add_argument('--gcs_files', default='20000', help='N of the gs:// runs, comma-separated; empty: none')
  parser.add_argument('--gcs_files_per_unit', type=int, default=GCS_FILES_PER_UNIT,
                      help='--files_per_unit of the gs:// runs')
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--unit_images', type=int, default=0, help='the unit-size check over this many images')
  parser.add_argument('--json', default=str(data.ROOT / 'planning.json'))
  args = parser.parse_args(argv)
  parse = lambda text: [int(x) for x in text.split(',') if x]  # pylint: disable=unnecessary-lambda-assignment
  started = time.monotonic()
  report = measure(parse(args.files), parse(args.gcs_files), args.repeats, args.unit_images,
                   log=lambda line: print(line, file=sys.stderr, flush=True),
                   gcs_files_per_unit=args.gcs_files_per_unit)
  save(report, 'python -m benchmarks.planning', argv, started, args.json)
  print(markdown(report))
  print(f'\n({report["seconds"]:.0f} s)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
