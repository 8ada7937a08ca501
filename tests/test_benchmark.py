"""The throughput benchmark: its report and tables from given runs (no processes), its quick mode's settings, and
its one command end to end at a tiny size (every variant, the peers in their own virtualenvs included, runs and
gives every image its row; not timed)."""
import json
import subprocess
import sys

import pytest

from benchmarks import data, throughput
from tests import datagen

PER_IMAGE = {'a': 0.01, 'b': 0.02, 'c': 0.04, 'd': 0.03, 'e': 0.05}  # seconds per image of the made-up runs
STARTUP = {'a': 5.0, 'b': 8.0, 'c': 9.0, 'd': 12.0, 'e': 15.0}  # and their start-up, in seconds


def _dataset(count, root) -> data.DataSet:
  return data.DataSet(count, f'{root}/f{count}', f'{root}/t{count}', f'{root}/w{count}', f'{root}/p{count}')


def test_report_and_tables_from_given_runs(monkeypatch, tmp_path):
  """The whole report (marginal rates, start-up, ratios, the larger pass) and its tables, from runs made up
  with a known start-up and cost per image, so that every number can be checked."""
  calls = []

  def run_once(variant, task, model, dataset):
    calls.append((variant, task, dataset.count))
    seconds = STARTUP[variant] + PER_IMAGE[variant] * dataset.count
    return throughput.Run(dataset.count, seconds, 100.0 + dataset.count, 50.0, 2 * seconds, 1.0)

  monkeypatch.setattr(throughput, 'run_once', run_once)
  monkeypatch.setattr(data, 'make', _dataset)
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
      assert result['end_to_end_images_per_second'] == round(24 / (STARTUP[variant] + 24 * PER_IMAGE[variant]), 3)
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


def test_peer_ratios_and_main_ratios_table(monkeypatch, tmp_path):
  """The peers' ratios: b against d and e per core, marginal and end to end, and per core counting every
  process (the launcher's CPU too, 1 s a run here); the short table --quick prints has the main ones."""

  def run_once(variant, task, model, dataset):
    seconds = STARTUP[variant] + PER_IMAGE[variant] * dataset.count
    return throughput.Run(dataset.count, seconds, 100.0, 50.0, 2 * seconds, 1.0)

  monkeypatch.setattr(throughput, 'run_once', run_once)
  monkeypatch.setattr(throughput.registry, 'prepare', lambda names: None)  # no virtualenv made for made-up runs
  monkeypatch.setattr(data, 'make', _dataset)
  report = throughput.benchmark(24, 8, 1, 0, ['classify_tflite'], list('abcde'), tmp_path, log=lambda _: None)
  ratios = report['configs']['classify_tflite']['ratios']
  assert (ratios['b/d'], ratios['b/e']) == (1.5, 2.5)
  assert (ratios['b/d per core'], ratios['b/e per core']) == (1.5, 2.5)
  # all processes: per image, workers 2 x 0.02 s (b) against 2 x 0.03 s (d), plus the launchers' 1 s a run,
  # which the marginal CPU (24 - 8 images) cancels: the same 1.5
  assert ratios['b/d per core, all processes'] == 1.5 and ratios['b/e per core, all processes'] == 2.5
  assert 'b/a per core, all processes' not in ratios  # only where the two sides split the work differently
  table = throughput.headline(report)
  for name in ('b/a per core', 'b/c per core', 'b/d per core', 'b/e per core', 'b/d per core, all processes',
               'b/e end to end'):
    assert f'| {name} |' in table
  assert 'b_tfrecord' not in table


def test_quick_mode_settings(monkeypatch, tmp_path):
  """--quick: one configuration, a, b, c and the peers d and e, at two sizes once; any option given still wins."""
  calls = []
  monkeypatch.setattr(throughput, 'benchmark', lambda *args, **kwargs: calls.append(args) or {'configs': {}})
  monkeypatch.setattr(throughput, 'markdown', lambda report: '')
  monkeypatch.setattr(throughput, 'headline', lambda report: '')
  throughput.main(['--quick', '--json', str(tmp_path / 'q.json')])
  throughput.main(['--quick', '--images', '100', '--json', str(tmp_path / 'q.json')])
  (images, small, repeats, large, configs, variants, _), (images2, small2, *_) = calls
  assert (images, small, repeats, large) == (2000, 400, 1, 0) and configs == ['classify_tflite']
  assert variants == ['a', 'b', 'c', 'd', 'e'] and (images2, small2) == (100, 400)
  assert json.loads((tmp_path / 'q.json').read_text())['command'].startswith('python -m benchmarks.throughput')


EVERY_VARIANT = [v for v in throughput.VARIANTS if v != 'b_flink']  # Flink: tests/test_flink.py, and the docs' run


@pytest.mark.full  # the job's, Beam's, Ray's and Spark's processes: 4.8 min on 2 cores at a load average of 8-10
def test_benchmark_command_runs_every_variant(tmp_path):
  """One configuration, one run per variant on 4 images, no start-up runs (--small_images 0) and no larger
  pass: what the command does, not what it measures. The peers' virtualenvs are made first if missing
  (.ci/run makes them in a step of its own: python -m benchmarks.variants)."""
  report_path = tmp_path / 'throughput.json'
  proc = subprocess.run([
      sys.executable, '-m', 'benchmarks.throughput', '--images', '4', '--small_images', '0', '--repeats', '1',
      '--large_images', '0', '--configs', 'classify_tflite', '--variants', ','.join(EVERY_VARIANT), '--data_dir',
      str(tmp_path / 'data'), '--json', str(report_path)
  ], cwd=datagen.ROOT, capture_output=True, text=True, timeout=1800, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(report_path.read_text())
  assert report['machine']['cores'] >= 1 and report['machine']['apache-beam'] and report['command']
  assert (report['images'], report['small_images'], report['repeats']) == (4, 0, 1)
  entry, = report['configs'].values()
  assert report['configs'].keys() == {'classify_tflite'} and entry['task'] == 'classify'
  assert list(entry['variants']) == EVERY_VARIANT
  assert report['machine']['ray'] and report['machine']['pyspark']  # the peers' versions, from their virtualenvs
  for variant, result in entry['variants'].items():
    assert [r['images'] for r in result['runs']] == [4] and result['small_runs'] == [], variant  # every image: a row
    assert all(r['seconds'] > 0 and r['launcher_rss_mb'] > 0 for r in result['runs'])
    assert 0 < result['worker_peak_rss_mb'] < 4096, variant  # the workers were found and sampled
    assert result['worker_cpu_ms_per_image'] > 0, variant
    assert result['end_to_end_images_per_second'] > 0
    assert result['images_per_second'] is None and result['startup_seconds'] is None  # no start-up runs
  peers = ['d', 'd_binary', 'e', 'e_pandas_udf']
  assert set(entry['ratios']) == (
      {f'{top}/{x}{kind}' for top in ('b', 'b_tfrecord') for x in 'ac' for kind in (' end to end', ' per core')}
      | {f'b_parquet/b_tfrecord{kind}' for kind in (' end to end', ' per core')}
      | {f'b/{x}{kind}' for x in peers for kind in (' end to end', ' per core', ' per core, all processes')})
  assert all(ratio > 0 for ratio in entry['ratios'].values())
  assert 'large' not in entry
  table = proc.stdout
  for name in ['classify_tflite', 'b/a', 'b/c', 'b/d', 'b/e', 'peak RSS per worker', 'no start-up runs',
               '| main ratio |', '| b/e per core |']:
    assert name in table
  assert table.count('\n| classify_tflite |') == len(EVERY_VARIANT)  # a row per variant
  assert table.count('\n| b/a') == 2 + 2  # ratio rows: end to end, per core; again in the main ratios
