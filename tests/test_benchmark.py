"""The throughput benchmark: its report and tables from given runs (no processes), and its one command end to end
at a tiny size (every variant runs and gives every image its row; not timed)."""
import json
import subprocess
import sys

import pytest

from benchmarks import data, throughput
from tests import datagen

PER_IMAGE = {'a': 0.01, 'b': 0.02, 'c': 0.04}  # seconds per image of the made-up runs
STARTUP = {'a': 5.0, 'b': 8.0, 'c': 9.0}  # and their start-up, in seconds


def test_report_and_tables_from_given_runs(monkeypatch, tmp_path):
  """The whole report (marginal rates, start-up, ratios, the larger pass) and its tables, from runs made up
  with a known start-up and cost per image, so that every number can be checked."""
  calls = []

  def run_once(variant, task, model, dataset):
    calls.append((variant, task, dataset.count))
    seconds = STARTUP[variant] + PER_IMAGE[variant] * dataset.count
    return throughput.Run(dataset.count, seconds, 100.0 + dataset.count, 50.0, 2 * seconds, 1.0)

  monkeypatch.setattr(throughput, 'run_once', run_once)
  monkeypatch.setattr(data, 'make', lambda count, root: data.DataSet(count, f'{root}/f{count}', f'{root}/t{count}'))
  report = throughput.benchmark(24, 8, 2, 32, list(throughput.CONFIGS), ['a', 'b', 'c'], tmp_path, log=lambda _: None)
  tasks = [task for task, _ in throughput.CONFIGS.values()]
  assert sorted(calls) == sorted([(v, task, n) for task in tasks for v in 'abc' for n in (24, 8) * 2] +
                                 [(v, task, 32) for task in tasks for v in 'abc'])  # both sizes per repeat; large once
  assert report['machine']['cores'] >= 1 and report['machine']['apache-beam']
  assert (report['images'], report['small_images'], report['repeats']) == (24, 8, 2)
  assert set(report['configs']) == set(throughput.CONFIGS)
  for config, entry in report['configs'].items():
    assert entry['task'] == throughput.CONFIGS[config][0]
    assert set(entry['variants']) == {'a', 'b', 'c'}
    for variant, result in entry['variants'].items():
      assert [r['images'] for r in result['runs'] + result['small_runs']] == [24, 24, 8, 8]
      assert result['images_per_second'] == pytest.approx(1 / PER_IMAGE[variant], rel=0.01)
      assert result['startup_seconds'] == pytest.approx(STARTUP[variant], abs=0.01)
      assert result['worker_cpu_ms_per_image'] == pytest.approx(2000 * PER_IMAGE[variant])
      assert result['worker_peak_rss_mb'] == 124.0 and result['launcher_peak_rss_mb'] == 50.0
      assert result['end_to_end_images_per_second'] == round(24 / (STARTUP[variant] + 24 * PER_IMAGE[variant]), 1)
    assert set(entry['ratios']) == {f'b/{x}{kind}' for x in 'ac' for kind in ('', ' end to end', ' per core')}
    assert (entry['ratios']['b/a'], entry['ratios']['b/c']) == (0.5, 2.0)
    assert (entry['ratios']['b/a per core'], entry['ratios']['b/c per core']) == (0.5, 2.0)
    assert entry['ratios']['b/a end to end'] > 0 and entry['ratios']['b/c end to end'] > 0
    large = entry['large']
    assert large['images'] == 32 and set(large['runs']) == {'a', 'b', 'c'}
    assert all(r['images'] == 32 for r in large['runs'].values())
    assert large['worker_peak_rss_mb'] == {v: [124.0, 132.0] for v in 'abc'}
    assert set(large['ratios']) == {f'b/{x}{kind}' for x in 'ac' for kind in (' end to end', ' per core')}
    assert all(large['ratios'].values()) and all(ms > 0 for ms in large['worker_cpu_ms_per_image'].values())
  table = throughput.markdown(report)
  for name in list(throughput.CONFIGS) + ['b/a', 'b/c', 'peak RSS per worker', '8 for the start-up']:
    assert name in table
  assert table.count('\n| classify_tflite |') == 3 + 3  # a row per variant, at both sizes
  assert table.count('\n| b/a') == 3 + 2  # ratio rows: marginal, end to end, per core; at the larger size two


@pytest.mark.full  # starts the job's worker processes and the others' (about 30 s on 2 cores)
def test_benchmark_command_runs_every_variant(tmp_path):
  """One configuration, one run per variant on 4 images, no start-up runs (--small_images 0) and no larger
  pass: what the command does, not what it measures."""
  report_path = tmp_path / 'throughput.json'
  proc = subprocess.run([
      sys.executable, '-m', 'benchmarks.throughput', '--images', '4', '--small_images', '0', '--repeats', '1',
      '--large_images', '0', '--configs', 'classify_tflite', '--variants', 'a,b,c', '--data_dir',
      str(tmp_path / 'data'), '--json', str(report_path)
  ], cwd=datagen.ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(report_path.read_text())
  assert report['machine']['cores'] >= 1 and report['machine']['apache-beam'] and report['command']
  assert (report['images'], report['small_images'], report['repeats']) == (4, 0, 1)
  entry, = report['configs'].values()
  assert report['configs'].keys() == {'classify_tflite'} and entry['task'] == 'classify'
  assert set(entry['variants']) == {'a', 'b', 'c'}  # the TFRecord variant runs the same job: left out for time
  for variant, result in entry['variants'].items():
    assert [r['images'] for r in result['runs']] == [4] and result['small_runs'] == [], variant  # every image: a row
    assert all(r['seconds'] > 0 and r['launcher_rss_mb'] > 0 for r in result['runs'])
    assert 0 < result['worker_peak_rss_mb'] < 4096, variant  # the workers were found and sampled
    assert result['worker_cpu_ms_per_image'] > 0, variant
    assert result['end_to_end_images_per_second'] > 0
    assert result['images_per_second'] is None and result['startup_seconds'] is None  # no start-up runs
  assert set(entry['ratios']) == {f'b/{x}{kind}' for x in 'ac' for kind in (' end to end', ' per core')}
  assert all(ratio > 0 for ratio in entry['ratios'].values())
  assert 'large' not in entry
  table = proc.stdout
  for name in ['classify_tflite', 'b/a', 'b/c', 'peak RSS per worker', 'no start-up runs']:
    assert name in table
  assert table.count('\n| classify_tflite |') == 3  # a row per variant
  assert table.count('\n| b/a') == 2  # ratio rows: end to end, per core
