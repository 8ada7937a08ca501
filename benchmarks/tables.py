"""The throughput benchmark's report as Markdown: the tables docs/benchmarks.md shows, and the short table of the
main ratios that `--quick` prints."""
from typing import Dict, List

MAIN_RATIOS = ('b/a', 'b/c', 'b/d', 'b/e')


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


def headline(report: dict) -> str:
  """The main ratios, b against the limit, the Beam baseline and the peers: per core (images per second of the
  workers' CPU; for the peers also of every process's), marginal and end to end, one column per configuration."""
  entries = report['configs']
  names = [f'{pair}{kind}' for pair in MAIN_RATIOS
           for kind in (' per core', ' per core, all processes', '', ' end to end')]
  names = [n for n in names if any(n in e['ratios'] for e in entries.values())]
  lines = ['| main ratio | ' + ' | '.join(entries) + ' |', '| --- |' + ' ---: |' * len(entries)]
  for name in names:
    lines.append(f'| {name} | ' + ' | '.join(_fmt(e['ratios'].get(name), 2) for e in entries.values()) + ' |')
  return '\n'.join(lines)

