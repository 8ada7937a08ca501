"""Object storage side by side with local disk: the job over the same JPEGs, TFRecord shards, tar shards and Parquet
tables, read from disk and from gs://, and Ray Data's read_images over the same objects.

`python -m benchmarks.object_storage [--images 3000] [--small_images 300] [--latencies 25,100] [--repeats 2]
[--variants disk_files,gcs_files,...]`

gs:// is fake-gcs-server (benchmarks/gcs_server.py) on this machine, behind a
proxy that holds every request L ms and counts connections and requests
(benchmarks/latency_proxy.py): real GCS answers a small read in tens of ms.
For each L in --latencies, the variants run interleaved (the order turns
with each repeat), each as its own command, at --images and --small_images,
so that the rate is marginal (start-up apart) as in benchmarks/throughput.py:

  disk_files, gcs_files        python -m pipeline over the JPEGs (TFLite classify, as issue 29 measured)
  disk_tfrecord, gcs_tfrecord  the same over the TFRecord shards of those images
  disk_tar, gcs_tar            the same over WebDataset tar shards of them
  disk_parquet, gcs_parquet    the same over Parquet tables of them (Hugging Face's image struct, pipeline/pack.py)
  ray_gcs                      benchmarks.peer_ray (read_images) over the gs:// JPEGs, pyarrow's GcsFileSystem

Reported per variant: images/s, worker CPU ms per image, requests and
connections per image (the proxy's counts, all the run's requests: listing
included), the server's and the proxy's CPU per image (they share the
machine's cores with the job), peak RSS per worker; and the ratios gcs/disk
per format, and gcs_files/ray_gcs. Everything goes to --json.
"""
import argparse
import concurrent.futures
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import psutil

from benchmarks import data, gcs_server, peer_ray, shared
from benchmarks import variants as registry
from benchmarks.latency_proxy import LatencyProxy
from benchmarks.sampler import cpu_seconds
from benchmarks.throughput import machine, measured, run_sampled, save, summarize

FORMATS = ('files', 'tfrecord', 'tar', 'parquet')  # DataSet fields
VARIANTS = tuple(f'{where}_{fmt}' for fmt in FORMATS for where in ('disk', 'gcs')) + ('ray_gcs',)
BUCKET = 'bench'


def _upload(endpoint: str, dataset: data.DataSet) -> Dict[str, str]:
  """The data set's files and shards into the bucket, at their paths under bench_data/; their gs:// globs."""
  from google.cloud import storage  # pylint: disable=import-outside-toplevel
  from requests import adapters  # pylint: disable=import-outside-toplevel
  os.environ['STORAGE_EMULATOR_HOST'] = endpoint
  try:
    client = storage.Client.create_anonymous_client()
    client._http.mount('http://', adapters.HTTPAdapter(pool_maxsize=16))  # pylint: disable=protected-access
    bucket = client.lookup_bucket(BUCKET) or client.create_bucket(BUCKET)
    globs = {fmt: getattr(dataset, fmt) for fmt in FORMATS}
    paths = [p for pattern in globs.values() for p in glob.glob(pattern)]
    root = str(data.ROOT) + '/'
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      list(pool.map(lambda p: bucket.blob(p[len(root):]).upload_from_filename(p), paths))
  finally:
    del os.environ['STORAGE_EMULATOR_HOST']
  return {fmt: f'gs://{BUCKET}/{pattern[len(root):]}' for fmt, pattern in globs.items()}


def _command(variant: str, source: str, output: str) -> List[str]:
  job = ['--output', output, '--model', str(shared.TFLITE_QUANT), '--task', 'classify', '--labels_file',
         str(shared.LABELS)]
  if variant == 'ray_gcs':
    return [peer_ray.ensure_venv(), '-m', 'benchmarks.peer_ray', '--input', source, '--variant', 'read_images'] + job
  return [sys.executable, '-m', 'pipeline', '--input', source, '--no_auth'] + job


def run_once(variant: str, dataset: data.DataSet, remote: Dict[str, str], proxy: LatencyProxy,
             server: psutil.Process) -> dict:
  """One run as its own command; fails unless it wrote a row for every image. The storage's counts with it."""
  where, fmt = variant.split('_', 1)
  fmt = 'files' if where == 'ray' else fmt
  local = getattr(dataset, fmt)
  source = local if where == 'disk' else remote[fmt]
  scratch = tempfile.mkdtemp(prefix=f'bench_{variant}_')
  output = os.path.join(scratch, 'out')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(shared.ROOT), STORAGE_EMULATOR_HOST=proxy.url)
  before = proxy.counts()
  storage_cpu = cpu_seconds(server) + cpu_seconds(psutil.Process())
  try:
    stdout, seconds, sampler = run_sampled(variant, _command(variant, source, output), env, scratch)
    rows = registry.rows('b', output, stdout)
    if rows != dataset.count:
      raise RuntimeError(f'{variant} wrote {rows} rows for {dataset.count} images')
    storage_cpu = cpu_seconds(server) + cpu_seconds(psutil.Process()) - storage_cpu
    after = proxy.counts()
    return {'run': measured(rows, seconds, sampler, storage_cpu), 'requests': after['requests'] - before['requests'],
            'connections': after['connections'] - before['connections']}
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


def _per_image(big: List[dict], small: List[dict], field: str, images: int, small_images: int) -> float:
  spent = statistics.median(r[field] for r in big) - (statistics.median(r[field] for r in small) if small else 0)
  return round(spent / (images - small_images), 3)


def measure(images: int, small_images: int, latencies: Sequence[float], repeats: int, variants: Sequence[str],
            log=print) -> dict:
  sets = {count: data.make(count) for count in {images, small_images}}
  report = {'machine': machine(['d'] if 'ray_gcs' in variants else []), 'images': images,
            'small_images': small_images, 'repeats': repeats, 'latencies': {}}
  if 'ray_gcs' in variants:
    peer_ray.ensure_venv()
  with gcs_server.fake_gcs_server() as server:
    remote = {count: _upload(server.endpoint, dataset) for count, dataset in sets.items()}
    for latency in latencies:
      runs: Dict[tuple, List[dict]] = {}
      with LatencyProxy(server.endpoint, latency) as proxy:
        for repeat in range(repeats):
          order = list(variants[repeat % len(variants):]) + list(variants[:repeat % len(variants)])
          for variant in order:
            for count in (images, small_images):
              got = run_once(variant, sets[count], remote[count], proxy, psutil.Process(server.pid))
              runs.setdefault((variant, count), []).append(got)
              log(f'L={latency:g} ms repeat {repeat + 1}/{repeats} {variant} {count} images: '
                  f'{got["run"].seconds:.1f} s, {got["requests"]} requests, {got["connections"]} connections, '
                  f'worker {got["run"].worker_rss_mb:.0f} MB')
      results = {}
      for variant in variants:
        big, small = runs[(variant, images)], runs[(variant, small_images)]
        entry = summarize([r['run'] for r in big], [r['run'] for r in small])
        entry['storage_cpu_ms_per_image'] = entry.pop('cluster_cpu_ms_per_image')
        entry['requests_per_image'] = round(statistics.median(r['requests'] for r in big) / images, 3)
        entry['connections_per_image'] = round(statistics.median(r['connections'] for r in big) / images, 4)
        entry['marginal_requests_per_image'] = _per_image(big, small, 'requests', images, small_images)
        entry['counts'] = [{k: r[k] for k in ('requests', 'connections')} for r in big]
        results[variant] = entry
      report['latencies'][str(latency)] = {'variants': results, 'ratios': ratios(results)}
  return report


def ratios(results: Dict[str, dict]) -> Dict[str, Optional[float]]:
  """gs:// against disk for each format, and the job against Ray Data on the same objects: marginal images/s, end to
  end (the whole command at --images, start-up included) and per core."""
  pairs = [(f'gcs_{fmt}', f'disk_{fmt}') for fmt in FORMATS] + [('gcs_files', 'ray_gcs')]
  found = {}
  for top, bottom in pairs:
    if top in results and bottom in results:
      a, b = results[top], results[bottom]
      found[f'{top}/{bottom}'] = (round(a['images_per_second'] / b['images_per_second'], 2)
                                  if a['images_per_second'] and b['images_per_second'] else None)
      found[f'{top}/{bottom} end to end'] = round(a['end_to_end_images_per_second']
                                                  / b['end_to_end_images_per_second'], 2)
      found[f'{top}/{bottom} per core'] = round(b['worker_cpu_ms_per_image'] / a['worker_cpu_ms_per_image'], 2) \
          if a['worker_cpu_ms_per_image'] > 0 else None
      found[f'{top}/{bottom} peak RSS per worker'] = round(a['worker_peak_rss_mb'] / b['worker_peak_rss_mb'], 2)
  return found


def markdown(report: dict) -> str:
  lines = [f'{report["images"]:,} images ({report["small_images"]:,} for the start-up), median of '
           f'{report["repeats"]} interleaved runs each; {report["machine"]["cores"]} cores', '',
           '| latency | variant | images/s | worker CPU ms/img | requests/img | connections/img | storage CPU ms/img '
           '| peak RSS per worker |', '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |']
  for latency, entry in report['latencies'].items():
    for variant, r in entry['variants'].items():
      rate = r['images_per_second']
      lines.append(f'| {float(latency):g} ms | {variant} | {rate if rate is None else round(rate)} | '
                   f'{r["worker_cpu_ms_per_image"]:.2f} | {r["requests_per_image"]:.3f} | '
                   f'{r["connections_per_image"]:.4f} | {r["storage_cpu_ms_per_image"]:.2f} | '
                   f'{r["worker_peak_rss_mb"]:,.0f} MB |')
  lines += ['', '| latency | ratio | value |', '| ---: | --- | ---: |']
  for latency, entry in report['latencies'].items():
    for name, value in entry['ratios'].items():
      lines.append(f'| {float(latency):g} ms | {name} | {value} |')
  return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.object_storage', description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=3000)
  parser.add_argument('--small_images', type=int, default=300)
  parser.add_argument('--latencies', default='25,100', help='ms the proxy holds each request, comma-separated')
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--variants', default=','.join(VARIANTS), help=f'of {", ".join(VARIANTS)}')
  parser.add_argument('--json', default=str(data.ROOT / 'object_storage.json'))
  args = parser.parse_args(argv)
  variants = args.variants.split(',')
  unknown = sorted(set(variants) - set(VARIANTS))
  if unknown:
    parser.error(f'unknown variants: {", ".join(unknown)}')
  if not 0 < args.small_images < args.images:
    parser.error('need 0 < --small_images < --images (the rates are marginal)')
  started = time.monotonic()
  report = measure(args.images, args.small_images, [float(x) for x in args.latencies.split(',')], args.repeats,
                   variants, log=lambda line: print(line, file=sys.stderr, flush=True))
  save(report, 'python -m benchmarks.object_storage', argv, started, args.json)
  print(markdown(report))
  print(f'\n({report["seconds"]:.0f} s; load average {" ".join(f"{x:.1f}" for x in os.getloadavg())} at the end)')
  return 0


if __name__ == '__main__':
  sys.exit(main())
