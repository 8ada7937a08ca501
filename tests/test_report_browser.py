"""The run report of real runs, opened in a real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium): no request leaves the page, no console error, the right totals, drawn charts, loaded thumbnails.

A full-page screenshot of each page is kept under out/test-artifacts/ (git-ignored). Chromium missing is a
failure: .ci/run installs it.
"""
import base64
import json
import pathlib
import shutil

import pyarrow.compute as pc
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from pipeline import report
from tests import datagen

pytestmark = pytest.mark.full

ARTIFACTS = datagen.ROOT / 'out' / 'test-artifacts'
CHROMIUM, DRIVER = pathlib.Path('/usr/bin/chromium'), pathlib.Path('/usr/bin/chromedriver')
MODEL = str(datagen.HUB_DIRS[datagen.HUB_CLASSIFIER])
OTHER_MODEL = str(datagen.MODELS / 'tflite' / 'mobilenet_v1_0.25_128_quant.tflite')


def _inputs(folder: pathlib.Path, generated: int, seed: int, broken: bool) -> pathlib.Path:
  folder.mkdir(parents=True)
  for path in datagen.photo_paths():
    shutil.copy(path, folder / path.name)
  datagen.make_jpegs(folder / 'gen', generated, seed=seed, size=(200, 150))
  if broken:
    (folder / 'not_an_image.jpg').write_text('<html>not an image</html>')
    (folder / 'empty.png').write_bytes(b'')
    (folder / 'cut.jpg').write_bytes((folder / 'gen' / 'img_000000.jpg').read_bytes()[:400])
  return folder


@pytest.fixture(scope='module')
def runs(tmp_path_factory, hub_cache):  # pylint: disable=unused-argument
  """Two real runs: A (Hub model, --task both, broken files) and B (another model, other inputs)."""
  from tests.conftest import run_job  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp('report_runs')
  a = run_job(root / 'a', ['--input', str(_inputs(root / 'in_a', 40, 0, True)), '--model', MODEL,
                           '--labels_file', str(datagen.LABELS), '--task', 'both', '--report'])
  assert (a.output / 'report.html').stat().st_size > 10000  # the job wrote its report
  b = run_job(root / 'b', ['--input', str(_inputs(root / 'in_b', 30, 0, False)), '--model', OTHER_MODEL,
                           '--labels_file', str(datagen.LABELS), '--task', 'classify'])
  return a, b


def _browser() -> webdriver.Chrome:
  assert CHROMIUM.exists() and DRIVER.exists(), 'apt-get install -y chromium chromium-driver (.ci/run does)'
  opts = webdriver.ChromeOptions()
  opts.binary_location = str(CHROMIUM)
  for flag in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1280,900'):
    opts.add_argument(flag)
  opts.set_capability('goog:loggingPrefs', {'performance': 'ALL', 'browser': 'ALL'})
  return webdriver.Chrome(options=opts, service=Service(str(DRIVER)))


def _open(driver, page: pathlib.Path, shot: str) -> list:
  """Loads the page; returns its network requests; saves a full-page screenshot."""
  driver.get(page.as_uri())
  assert driver.execute_script('return document.readyState') == 'complete'
  events = [json.loads(entry['message'])['message'] for entry in driver.get_log('performance')]
  requests = [e['params']['request']['url'] for e in events if e['method'] == 'Network.requestWillBeSent']
  failed = [e['params'] for e in events if e['method'] == 'Network.loadingFailed']
  assert not failed, failed
  errors = [entry for entry in driver.get_log('browser') if entry['level'] == 'SEVERE']
  assert not errors, errors
  metrics = driver.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
  png = driver.execute_cdp_cmd('Page.captureScreenshot', {
      'format': 'png', 'captureBeyondViewport': True,
      'clip': {'x': 0, 'y': 0, 'width': metrics['width'], 'height': metrics['height'], 'scale': 1}})
  ARTIFACTS.mkdir(parents=True, exist_ok=True)
  (ARTIFACTS / shot).write_bytes(base64.b64decode(png['data']))
  assert (ARTIFACTS / shot).stat().st_size > 10000
  return requests


def _text(driver, ident: str) -> str:
  return driver.find_element(By.ID, ident).text.strip()


def _top1(table) -> list:
  return pc.list_element(table['top_labels'], 0).to_pylist()


def test_report_of_a_real_run_in_chromium(runs):
  a, _ = runs
  path = pathlib.Path(report.write_report(str(a.output)))
  assert path == a.output / 'report.html'
  driver = _browser()
  try:
    requests = _open(driver, path, 'report.png')
    assert requests and all(url == path.as_uri() or url.startswith('data:') for url in requests), requests
    assert _text(driver, 'records_read') == f'{a.summary["records_read"]:,}'
    assert _text(driver, 'rows_written') == f'{a.predictions.num_rows:,}' == f'{a.summary["rows_written"]:,}'
    assert _text(driver, 'error_rows') == f'{a.errors.num_rows:,}' == '3'
    stages = a.errors.group_by('stage').aggregate([('id', 'count')]).to_pylist()
    for stage in stages:
      assert _text(driver, f'stage-{stage["stage"]}') == f'{stage["id_count"]:,}'
    cat_label = _top1(a.predictions.filter(pc.equal(a.predictions['id'], 'cat')))[0]
    assert cat_label == datagen.golden()['cat.bmp']['pil_bilinear'][0]['label']
    labels = {row.find_elements(By.TAG_NAME, 'td')[0].text: row.find_elements(By.TAG_NAME, 'td')[1].text
              for row in driver.find_elements(By.CSS_SELECTOR, '#label-table tbody tr')}
    assert labels[cat_label] == f'{_top1(a.predictions).count(cat_label):,}'
    charts = driver.find_elements(By.CSS_SELECTOR, 'section svg')
    assert len(charts) == 3  # labels, scores, embedding map
    for chart in charts:
      assert chart.size['width'] > 200 and chart.size['height'] > 100
      assert len(chart.find_elements(By.CSS_SELECTOR, 'path, use')) > 20
    images = driver.find_elements(By.CSS_SELECTOR, '#sheet img, #lowest img')
    assert len(images) >= 12
    assert all(driver.execute_script('return arguments[0].naturalWidth', img) > 0 for img in images)
    assert not driver.find_elements(By.CSS_SELECTOR, '.missing')  # every sampled image was read
  finally:
    driver.quit()


def test_compare_report_in_chromium(runs, tmp_path):
  a, b = runs
  path = pathlib.Path(report.write_report(str(a.output), str(b.output), str(tmp_path / 'compare.html')))
  mine = dict(zip(a.predictions['id'].to_pylist(), _top1(a.predictions)))
  theirs = dict(zip(b.predictions['id'].to_pylist(), _top1(b.predictions)))
  changed = sum(1 for key in mine.keys() & theirs.keys() if mine[key] != theirs[key])
  assert changed > 0
  driver = _browser()
  try:
    requests = _open(driver, path, 'report_compare.png')
    assert all(url == path.as_uri() or url.startswith('data:') for url in requests), requests
    assert _text(driver, 'changed_count') == f'{changed:,}'
    section = driver.find_element(By.ID, 'compare')
    assert f'{len(mine.keys() - theirs.keys()):,}' in section.text  # rows added
    assert len(section.find_elements(By.CSS_SELECTOR, 'svg path, svg use')) > 20
  finally:
    driver.quit()
