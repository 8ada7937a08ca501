"""The throughput benchmark's one command, end to end at a tiny size: a complete, sane table (not timed)."""
import json
import subprocess
import sys

from benchmarks import throughput
from tests import datagen


def test_benchmark_command_measures_every_variant_and_configuration(tmp_path):
  report_path = tmp_path / 'throughput.json'
  proc = subprocess.run([
      sys.executable, '-m', 'benchmarks.throughput', '--images', '24', '--small_images', '8', '--repeats', '1',
      '--large_images', '32', '--variants', 'a,b,c', '--data_dir', str(tmp_path / 'data'), '--json', str(report_path)
  ], cwd=datagen.ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(report_path.read_text())
  assert report['machine']['cores'] >= 1 and report['machine']['apache-beam'] and report['command']
  assert (report['images'], report['small_images'], report['repeats']) == (24, 8, 1)
  assert set(report['configs']) == set(throughput.CONFIGS)
  for config, entry in report['configs'].items():
    assert entry['task'] == throughput.CONFIGS[config][0]
    assert set(entry['variants']) == {'a', 'b', 'c'}  # the TFRecord variant runs the same job: left out for time
    for variant, result in entry['variants'].items():
      runs = result['runs'] + result['small_runs']
      assert [r['images'] for r in runs] == [24, 8], (config, variant)  # every image got its row
      assert all(r['seconds'] > 0 and r['launcher_rss_mb'] > 0 for r in runs)
      assert 0 < result['worker_peak_rss_mb'] < 4096, (config, variant)  # the workers were found and sampled
      assert result['end_to_end_images_per_second'] > 0
    assert set(entry['ratios']) == {f'b/{x}{kind}' for x in 'ac' for kind in ('', ' end to end', ' per core')}
    assert entry['ratios']['b/a end to end'] > 0 and entry['ratios']['b/c end to end'] > 0  # marginal: noise here
    large = entry['large']
    assert large['images'] == 32 and set(large['runs']) == {'a', 'b', 'c'}
    assert all(r['images'] == 32 for r in large['runs'].values())  # every image got its row at the larger size too
    assert all(0 < v < 4096 for peaks in large['worker_peak_rss_mb'].values() for v in peaks)
    assert set(large['ratios']) == {f'b/{x}{kind}' for x in 'ac' for kind in (' end to end', ' per core')}
    assert all(large['ratios'].values()) and all(ms > 0 for ms in large['worker_cpu_ms_per_image'].values())
  table = proc.stdout
  for name in list(throughput.CONFIGS) + ['b/a', 'b/c', 'peak RSS per worker']:
    assert name in table
  assert table.count('\n| classify_tflite |') == 3 + 3  # a row per variant, at both sizes
  assert table.count('\n| b/a') == 3 + 2  # ratio rows: marginal, end to end, per core; at the larger size two
