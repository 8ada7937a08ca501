"""Tables on object storage and over http, for real: Parquet tables of image bytes, an Arrow IPC stream (a
save_to_disk folder) and a Parquet table of gs:// locations on fake-gcs-server behind a proxy that holds each
request 25 ms give a local run's rows, with `accounted: true` and reads overlapping; a URI table's http(s)
locations are refused unless --allow_http, then read from a real HTTP server, a missing one an error row."""
import functools
import http.server
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.latency_proxy import LatencyProxy
from pipeline import pack
from tests import datagen, gcs

JOB = ['--model', str(datagen.TFLITE_QUANT), '--task', 'classify', '--top_k', '3', '--no_auth',
       '--direct_running_mode=multi_processing', '--direct_num_workers=2', '--reads_in_flight', '16']
IMAGES = 40


def _rows(result):
  return sorted((r['id'], r['top_classes'], [round(s, 5) for s in r['top_scores']])
                for r in result.predictions.to_pylist())


@pytest.fixture(scope='module', name='files')
def files_fixture(tmp_path_factory):
  root = tmp_path_factory.mktemp('parquet_storage')
  datagen.make_jpegs(root / 'files', IMAGES, size=(320, 240))
  pack.pack([str(root / 'files')], str(root / 'tables' / 'shard'), 'parquet', images_per_shard=IMAGES // 2)
  (root / 'arrow').mkdir()
  table = pq.read_table(root / 'tables')
  with pa.ipc.new_stream(str(root / 'arrow' / 'data-00000-of-00001.arrow'), table.schema) as writer:
    for batch in table.to_batches(max_chunksize=8):  # as save_to_disk writes a table: a stream of batches
      writer.write_batch(batch)
  return root


def _uri_table(path, locations, ids) -> None:
  pq.write_table(pa.table({'key': ids, 'url': locations, 'n': pa.array(range(len(ids)), pa.int32())}), path,
                 row_group_size=16)


@pytest.mark.full
def test_tables_on_gcs_with_latency_give_the_local_rows(files, tmp_path, run_job, monkeypatch):
  local = run_job(tmp_path / 'local', ['--input', str(files / 'files' / '*.jpg')] + JOB)
  names = sorted(p.name for p in (files / 'files').glob('*.jpg'))
  with gcs.fake_gcs_server() as server:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', server)
    bucket = gcs.new_bucket()
    images = gcs.upload(bucket, files / 'files', 'images')
    tables = gcs.upload(bucket, files / 'tables', 'tables')
    arrow = gcs.upload(bucket, files / 'arrow', 'arrow')
    # half the locations absolute, half relative to the table's folder (gs://bucket/uris/)
    locations = [f'{images}/{n}' if i % 2 else f'../images/{n}' for i, n in enumerate(names)]
    _uri_table(tmp_path / 'uris.parquet', locations + [f'{images}/missing.jpg'],
               [n[:-4] for n in names] + ['missing'])
    uris = gcs.upload(bucket, tmp_path / 'uris.parquet', 'uris/uris.parquet')
    with LatencyProxy(server, 25) as proxy:
      monkeypatch.setenv('STORAGE_EMULATOR_HOST', proxy.url)
      binary = run_job(tmp_path / 'binary', ['--input', f'{tables}/*.parquet'] + JOB)
      streamed = run_job(tmp_path / 'arrow', ['--input', arrow] + JOB)
      by_uri = run_job(tmp_path / 'uri', ['--input', uris, '--image_column', 'url', '--id_column', 'key'] + JOB)
  assert local.summary['accounted'] and binary.summary['accounted'] and by_uri.summary['accounted']
  assert _rows(binary) == _rows(local) and len(binary.predictions) == IMAGES
  assert streamed.summary['accounted'] and _rows(streamed) == _rows(local)
  assert _rows(by_uri) == _rows(local)
  assert [(r['id'], r['stage'], r['error_type']) for r in by_uri.errors.to_pylist()] == [
      ('missing', 'read', 'FileNotFoundError')]
  assert by_uri.summary['records_read'] == IMAGES + 1
  assert sorted(r['n'] for r in by_uri.predictions.to_pylist()) == list(range(IMAGES))
  assert proxy.connections > 2  # reads overlapped: more than one connection per worker process


@pytest.fixture(name='http_server')
def http_server_fixture(files):
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(files / 'files'))
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f'http://127.0.0.1:{server.server_address[1]}'
  server.shutdown()


def test_http_locations_are_read_only_when_allowed(files, http_server, tmp_path, run_job):
  names = sorted(p.name for p in (files / 'files').glob('*.jpg'))[:8]
  _uri_table(tmp_path / 'uris.parquet', [f'{http_server}/{n}' for n in names] + [f'{http_server}/gone.jpg'],
             [n[:-4] for n in names] + ['gone'])
  args = ['--input', str(tmp_path / 'uris.parquet'), '--image_column', 'url', '--id_column', 'key'] + JOB
  refused = run_job(tmp_path / 'refused', args)
  assert refused.summary['accounted'] and refused.predictions.num_rows == 0
  assert {r['error_type'] for r in refused.errors.to_pylist()} == {'PermissionError'}
  assert all('--allow_http' in r['message'] for r in refused.errors.to_pylist())
  allowed = run_job(tmp_path / 'allowed', args + ['--allow_http'])
  local = run_job(tmp_path / 'local', ['--input', ','.join(str(files / 'files' / n) for n in names)] + JOB)
  assert allowed.summary['accounted'] and _rows(allowed) == _rows(local)
  assert [(r['id'], r['error_type']) for r in allowed.errors.to_pylist()] == [('gone', 'FileNotFoundError')]
