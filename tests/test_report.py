"""The run report's parts on made-up outputs (exact counts against pyarrow's own), thumbnails read back from
TFRecord and tar shards the packer wrote, --compare, and the command line. The browser test is
tests/test_report_browser.py."""
import base64
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from benchmarks import report as bench
from pipeline import pack, report
from pipeline.report import aggregate, compare, thumbnails
from tests import datagen
from transforms.read.formats import tfrecord, webdataset

ROWS = 3000


@pytest.fixture(scope='module')
def made(tmp_path_factory):
  return bench.make_output(tmp_path_factory.mktemp('report') / 'out', ROWS, dims=16)


def _top1(table: pa.Table) -> list:
  return pc.list_element(table['top_labels'], 0).to_pylist()


def test_aggregates_are_exact(made, monkeypatch):
  monkeypatch.setattr(aggregate, 'BATCH_ROWS', 700)  # many batches: the merging of samples is exercised
  table = pq.read_table(made / 'predictions')
  p = aggregate.Predictions(str(made / 'predictions'))
  top1 = _top1(table)
  assert p.rows == ROWS
  assert dict(p.label_counts()) == {label: top1.count(label) for label in set(top1)}
  scores = pc.list_element(table['top_scores'], 0).to_numpy()
  assert p.score_hist.sum() == ROWS and p.under_half == int((scores < 0.5).sum())
  norms = np.linalg.norm(np.stack(table['embedding'].to_numpy(zero_copy_only=False)).astype(np.float64), axis=1)
  stats = p.norm_stats()
  assert stats['count'] == ROWS and stats['mean'] == pytest.approx(norms.mean())
  assert stats['max'] == pytest.approx(norms.max()) and stats['std'] == pytest.approx(norms.std(), rel=1e-6)
  by_id = dict(zip(table['id'].to_pylist(), top1))
  sampled = p.by_label.table().to_pylist()
  for code in {r['label'] for r in sampled}:
    rows = [r for r in sampled if r['label'] == code]
    assert len(rows) == min(aggregate.PER_LABEL, top1.count(p.labels.names[code]))
    assert all(by_id[r['id']] == p.labels.names[code] for r in rows)
  lowest = sorted(r['score'] for r in p.lowest.table().to_pylist())
  assert lowest == pytest.approx(np.sort(scores)[:aggregate.LOWEST])
  assert p.map_sample.table().num_rows == aggregate.MAP_SAMPLE


def test_errors_by_stage_and_kind(made):
  table = pq.read_table(made / 'errors')
  e = aggregate.Errors(str(made / 'errors'))
  stages = table['stage'].to_pylist()
  assert e.by_stage() == {stage: stages.count(stage) for stage in set(stages)}
  assert all(len(kind['examples']) == min(aggregate.ERROR_EXAMPLES, kind['count']) for kind in e.by_kind())


def test_page_is_self_contained_and_states_the_totals(made, tmp_path):
  page = tmp_path / 'page.html'
  assert report.write_report(str(made), path=str(page)) == str(page)
  text = page.read_text()
  summary = json.loads((made / 'summary.json').read_text())
  assert f'id="rows_written">{summary["rows_written"]:,}<' in text
  assert f'id="error_rows">{summary["errors"]:,}<' in text
  assert text.count('<svg') == 3
  external = [u for u in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text) if not u.startswith(('data:', '#'))]
  assert not external and not re.search(r'url\((?!#)', text) and '<script' not in text
  assert text.count('data:image/jpeg;base64,') >= 20  # thumbnails of the sampled rows, read from the files
  assert 'sampled uniformly at random' in text  # the sample sizes are stated


def test_thumbnails_from_tfrecord_and_tar_shards(tmp_path):
  photos = datagen.photo_folder(tmp_path, {})
  sources = []
  for fmt, compression in (('tfrecord', 'none'), ('tfrecord', 'gzip'), ('tar', 'none')):
    shards = pack.pack([str(photos)], str(tmp_path / f'{fmt}_{compression}' / 'shard'), fmt, images_per_shard=4,
                       gzip=compression == 'gzip').shards
    for shard in shards:
      if fmt == 'tar':
        with open(shard, 'rb') as f:
          sources += [f'{shard}#member={s.names[next(iter(s.members))]}' for s in webdataset.samples(f)]
      elif compression == 'none':
        data = open(shard, 'rb').read()  # pylint: disable=consider-using-with
        sources += [f'{shard}#offset={r.offset}' for r in tfrecord.RecordReader(io.BytesIO(data), len(data)).read()]
      else:
        sources.append(f'{shard}#offset=0')
  sources += [str(photos / 'cat.bmp'), str(tmp_path / 'gone.jpg'), f'{tmp_path}/gone.tar#member=x.jpg']
  thumbs = thumbnails.thumbnails(sources)
  assert set(thumbs) == set(sources)
  good = [s for s in sources if 'gone' not in s]
  assert len(good) >= 6 + 6 + 2 + 1
  for source in good:
    uri, why = thumbs[source]
    assert why is None and uri.startswith('data:image/jpeg;base64,'), (source, why)
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(',', 1)[1])))
    assert max(image.size) == thumbnails.SIZE
  assert all(thumbs[s][0] is None and thumbs[s][1] for s in sources if 'gone' in s)


def test_compare_counts_changed_added_and_lost(made, tmp_path):
  other = tmp_path / 'other'
  shutil.copytree(made, other)
  table = pq.read_table(made / 'predictions')
  labels = table['top_labels'].to_pylist()
  for i in range(0, 300, 3):  # 100 rows change their top-1
    labels[i] = ['changed'] + labels[i][1:]
  changed = table.set_column(table.schema.get_field_index('top_labels'), 'top_labels',
                             pa.array(labels, pa.list_(pa.string()))).slice(0, ROWS - 50)  # 50 rows lost
  shutil.rmtree(other / 'predictions')
  (other / 'predictions').mkdir()
  pq.write_table(changed, other / 'predictions' / 'part-0.parquet')
  result = compare.compare(str(made), str(other), 'top_labels', 'top_labels')
  assert result['changed'] == 100 and result['compared'] == ROWS - 50
  assert result['rows'] == {'added': 50, 'lost': 0} and result['errors'] == {'added': 0, 'lost': 0}
  assert all(r['label_other'] == 'changed' for r in result['changed_sample'])
  text = report.build(str(made), str(other))
  assert 'id="changed_count">100<' in text


def test_command_line(made, tmp_path):
  page = tmp_path / 'cli.html'
  done = subprocess.run([sys.executable, '-m', 'pipeline.report', str(made), '--output', str(page)],
                        cwd=datagen.ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0 and done.stdout.strip() == str(page) and page.stat().st_size > 10000, done.stderr
  missing = subprocess.run([sys.executable, '-m', 'pipeline.report', str(tmp_path / 'nothing')],
                           cwd=datagen.ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert missing.returncode == 2 and 'no summary.json' in missing.stderr


def test_the_job_writes_its_report_unless_told_not_to(tmp_path, capsys):
  from pipeline import run  # pylint: disable=import-outside-toplevel
  args = ['--input', f'{datagen.PHOTOS}/*', '--model', str(datagen.TFLITE_QUANT), '--labels_file',
          str(datagen.LABELS), '--task', 'classify', '--direct_num_workers', '1']
  assert run.main(['--output', str(tmp_path / 'on')] + args) == 0
  text = (tmp_path / 'on' / 'report.html').read_text()
  assert 'id="rows_written">6<' in text and 'Egyptian cat' in text
  for switch in ('--noreport', '--report=false'):
    out = tmp_path / switch.strip('-').replace('=', '_')
    assert run.main(['--output', str(out), switch] + args) == 0
    assert (out / 'summary.json').exists() and not (out / 'report.html').exists()
  assert run.main(['--output', str(tmp_path / 'bad'), '--report=maybe'] + args) == 2
  assert 'expected true or false' in capsys.readouterr().err and not (tmp_path / 'bad').exists()
