"""templates/airflow/ in a real Airflow, installed in its own virtualenv, with a SQLite metadata DB.

The Beam DAG really runs the job (`airflow dags test`, DirectRunner, the interpreter of this project's venv);
the Dataflow DAG imports cleanly and renders its launch body for a given logical date.
"""
import argparse
import ast
import json
import pathlib
import re
import sys
import urllib.request
from typing import Dict, List

import pyarrow.parquet as pq
import pytest

from pipeline import options as pipeline_options
from tests import airflow_env, datagen

pytestmark = pytest.mark.full

BEAM_DAG, DATAFLOW_DAG = 'image_inference_beam', 'image_inference_dataflow'
LOGICAL_DATE = '2024-06-01'  # the renders' (tasks render takes the params of a run of that date, if any)
RUN_DATE = '2024-06-02'  # the runs'
MODEL = datagen.HUB_DIRS[datagen.HUB_CLASSIFIER]
METADATA = datagen.ROOT / 'templates' / 'dataflow' / 'metadata.json'


def test_dags_import_cleanly(airflow):
  found = json.loads(airflow.python(
      'import json\n'
      'from airflow.dag_processing.dagbag import DagBag\n'
      f'bag = DagBag({str(airflow.home / "dags")!r})\n'
      'print(json.dumps({"dags": sorted(bag.dag_ids), "errors": bag.import_errors}))\n'))
  assert found == {'dags': [BEAM_DAG, DATAFLOW_DAG], 'errors': {}}
  listed = airflow.run(['dags', 'list', '-o', 'json'])
  assert listed.returncode == 0, listed.stdout[-3000:]
  assert {BEAM_DAG, DATAFLOW_DAG} <= set(re.findall(r'"dag_id": "([^"]+)"', listed.stdout))


def _run_beam_dag(airflow: airflow_env.Airflow, out: pathlib.Path, **settings: str) -> str:
  """Runs the Beam DAG on the shared photos with `airflow dags test`; checks the output; returns the log."""
  conf = {'input': f'{datagen.PHOTOS}/*', 'output': str(out), 'model': str(MODEL),
          'labels_file': str(datagen.LABELS), 'task': 'both'}
  conf.update({k: settings.pop(k) for k in ('runner', 'flink_master') if k in settings})
  proc = airflow.run(['dags', 'test', BEAM_DAG, RUN_DATE, '-c', json.dumps(conf)], python=sys.executable,
                     retries='0', model=str(MODEL), **settings)  # the model: the deployment's allowed one
  assert proc.returncode == 0, proc.stdout[-5000:]
  assert 'state=success' in proc.stdout
  out = out / RUN_DATE  # date-partitioned by {{ ds }}
  predictions = pq.read_table(out / 'predictions').to_pylist()
  errors = pq.read_table(out / 'errors')
  golden = datagen.golden()
  assert sorted(r['source'].rsplit('/', 1)[1] for r in predictions) == sorted(golden) == sorted(
      p.name for p in datagen.photo_paths())
  assert errors.num_rows == 0 and errors.column_names[:3] == ['id', 'source', 'stage']
  for row in predictions:
    expected = golden[row['source'].rsplit('/', 1)[1]]['pil_bilinear'][0]
    if row['id'] in ('bird', 'cat', 'hot_dog'):
      assert (row['top_classes'][0], row['top_labels'][0]) == (expected['index'], expected['label'])
    assert len(row['embedding']) == 512 and len(row['top_labels']) == 5
    assert row['model'] == str(MODEL)
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['records_read'] == summary['rows_written'] == len(golden) and summary['errors'] == 0
  return proc.stdout


def test_beam_dag_runs_the_job_on_the_direct_runner(airflow, tmp_path):
  log = _run_beam_dag(airflow, tmp_path / 'out')
  assert '--runner=DirectRunner' in log and '--resume' in log
  _run_beam_dag(airflow, tmp_path / 'out')  # the day again (a cleared task, a retry): resumed, not refused
  summary = json.loads((tmp_path / 'out' / RUN_DATE / 'summary.json').read_text())
  assert summary['resumed']['skipped_records'] == summary['rows_written'] == len(datagen.golden())
  assert summary['resumed']['redone_records'] == 0


def test_beam_dag_runs_the_job_on_flink(airflow, flink_flags, tmp_path):
  """The runner param switches the same DAG to a real Flink cluster (the one templates/flink/ starts)."""
  flink_master, flink_options = airflow_env.flink_settings(flink_flags)
  log = _run_beam_dag(airflow, tmp_path / 'out', runner='FlinkRunner', flink_master=flink_master,
                      flink_options=flink_options)
  assert '--runner=FlinkRunner' in log
  with urllib.request.urlopen(f'http://{flink_master}/jobs/overview', timeout=30) as response:
    states = [job['state'] for job in json.load(response)['jobs']
              if job['name'] == f'image-inference-beam-{RUN_DATE}']  # by which a killed task finds it to cancel it
  assert states == ['FINISHED']  # it ran on the cluster (whichever job server submitted it)


def test_beam_dag_timeout_stops_the_pipeline(airflow, tmp_path):
  out = tmp_path / 'out'
  conf = {'input': f'{datagen.PHOTOS}/*', 'output': str(out), 'model': str(MODEL), 'task': 'embed'}
  proc = airflow.run(['dags', 'test', BEAM_DAG, RUN_DATE, '-c', json.dumps(conf)], python=sys.executable,
                     retries='0', timeout_minutes='0.15', model=str(MODEL))
  assert proc.returncode != 0 and 'AirflowTaskTimeout' in proc.stdout, proc.stdout[-5000:]
  left = [cmd for cmd in _command_lines() if str(out) in cmd]
  assert not left, f'pipeline processes left running: {left}'
  assert "stopped the pipeline's processes" in proc.stdout
  assert not list(out.glob('*/summary.json'))  # stopped before its commit: incomplete, and a reader can tell


def _command_lines() -> List[str]:
  lines = []
  for cmdline in pathlib.Path('/proc').glob('[0-9]*/cmdline'):
    try:
      lines.append(cmdline.read_bytes().replace(b'\0', b' ').decode(errors='replace'))
    except OSError:  # the process ended meanwhile
      pass
  return lines


def _rendered(airflow: airflow_env.Airflow, dag_id: str, task_id: str, **settings: str) -> Dict[str, object]:
  """The task's template fields rendered for LOGICAL_DATE by `airflow tasks render`."""
  proc = airflow.run(['tasks', 'render', dag_id, task_id, LOGICAL_DATE], **settings)
  assert proc.returncode == 0, proc.stdout[-5000:]
  fields = re.findall(r'# property: (\w+)\n# -+\n(.*?)(?=\n# -{10}|\Z)', proc.stdout, re.S)
  return {name: value.strip() for name, value in fields}


def _image_option_names() -> set:
  parser = argparse.ArgumentParser()
  pipeline_options.ImageOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  return {action.dest for action in parser._actions} - {'help'}  # pylint: disable=protected-access


def test_dataflow_dag_renders_the_launch_body(airflow):
  settings = dict(template='gs://bucket/templates/image-inference.json', project='my-project',
                  region='europe-west4', input='gs://bucket/drops/{ds}/*.jpg', output='gs://bucket/results/',
                  model=datagen.HUB_CLASSIFIER, labels_file='gs://bucket/labels.txt', task='classify',
                  template_parameters='{"top_k": 3, "sdk_container_image": "docker.pkg.dev/p/beam/w:1"}',
                  environment='{"tempLocation": "gs://bucket/tmp", "maxWorkers": 4}')
  fields = _rendered(airflow, DATAFLOW_DAG, 'launch_flex_template', **settings)
  assert (fields['project_id'], fields['location']) == ('my-project', 'europe-west4')
  launch = ast.literal_eval(fields['body'])['launchParameter']
  assert launch['containerSpecGcsPath'] == 'gs://bucket/templates/image-inference.json'
  assert launch['jobName'] == 'image-inference-dataflow-20240601'
  assert launch['environment'] == {'tempLocation': 'gs://bucket/tmp', 'maxWorkers': 4}
  assert launch['parameters'] == {
      'input': 'gs://bucket/drops/2024-06-01/*.jpg', 'output': f'gs://bucket/results/{LOGICAL_DATE}',
      'model': datagen.HUB_CLASSIFIER, 'task': 'classify', 'labels_file': 'gs://bucket/labels.txt',
      'top_k': '3', 'sdk_container_image': 'docker.pkg.dev/p/beam/w:1', 'resume': 'True'}


def test_dataflow_dag_parameters_match_the_flex_template_metadata(airflow):
  """Each parameter the DAG sets is one of templates/dataflow/metadata.json and passes its regexes; the
  template's required parameters are always set."""
  metadata = {p['name']: p for p in json.loads(METADATA.read_text())['parameters']}
  fields = _rendered(airflow, DATAFLOW_DAG, 'launch_flex_template', input='gs://b/in/{ds}/*.jpg,gs://b/x/*',
                     output='gs://b/out', model='gs://b/models/m', labels_file='gs://b/labels.txt',
                     task='embed')
  parameters = ast.literal_eval(fields['body'])['launchParameter']['parameters']
  assert set(parameters) == {'input', 'output', 'model', 'task', 'labels_file', 'resume'}
  assert set(parameters) <= set(metadata)
  assert {name for name, p in metadata.items() if not p.get('isOptional')} <= set(parameters)
  for name, value in parameters.items():
    for regex in metadata[name].get('regexes', []):
      assert re.match(regex, value), (name, value, regex)
  choices = json.loads(airflow.python('import json, image_inference_dags as d\n'
                                      'print(json.dumps(d.TASKS))'))
  assert choices and all(re.match(metadata['task']['regexes'][0], task) for task in choices)


def test_beam_dag_renders_runner_options(airflow):
  fields = _rendered(airflow, BEAM_DAG, 'run_pipeline', input='/data/{ds}/*', output='/results',
                     model='/models/m', beam_options='{"direct_num_workers": 2}')
  assert fields['runner'] == 'DirectRunner' and fields['py_file'] == 'pipeline'
  assert ast.literal_eval(fields['pipeline_options']) == {
      'input': '/data/2024-06-01/*', 'output': f'/results/{LOGICAL_DATE}', 'model': '/models/m',
      'task': 'both', 'resume': True, 'direct_num_workers': 2}
  flink = json.loads(airflow.python(
      'import json, image_inference_dags as d\n'
      'params = d.image_inference_beam.params.dump()\n'
      'params.update(runner="FlinkRunner", flink_master="flink-jm:8081")\n'
      'options = d.image_inference_beam.user_defined_macros["beam_job_options"]\n'
      'print(json.dumps(options(params, "2024-06-01")))\n',
      input='/data/*', output='/results', model='/models/m', flink_options='{"environment_type": "EXTERNAL", '
      '"environment_config": "pool:50000", "flink_version": "1.19"}'))
  assert flink == {'input': '/data/*', 'output': '/results/2024-06-01', 'model': '/models/m', 'task': 'both',
                   'resume': True, 'flink_master': 'flink-jm:8081', 'environment_type': 'EXTERNAL',
                   'environment_config': 'pool:50000', 'flink_version': '1.19',
                   'job_name': 'image-inference-beam-2024-06-01'}  # by which a killed task cancels its job
  assert set(flink) - {'flink_master', 'environment_type', 'environment_config', 'flink_version', 'job_name'} <= \
      _image_option_names()


def test_model_is_restricted_to_the_allowed_models(airflow):
  """A model is a program (a SavedModel, a TF1 module): whoever triggers a run picks one the deployment allows."""
  found = json.loads(airflow.python(
      'import json, image_inference_dags as d\n'
      'default = d.image_inference_beam.params["model"]  # before resolve() below sets the value\n'
      'refused = {}\n'
      'for dag in (d.image_inference_beam, d.image_inference_dataflow):\n'
      '  try:\n'
      '    dag.params.get_param("model").resolve("/tmp/any/saved_model")\n'
      '    refused[dag.dag_id] = False\n'
      '  except Exception as e:  # ParamValidationError, as when a run is triggered with it\n'
      '    refused[dag.dag_id] = type(e).__name__\n'
      '  assert dag.params.get_param("model").resolve("/models/a") == "/models/a"\n'
      'params = dict(d.image_inference_beam.params.dump(), model="/tmp/any/saved_model")\n'
      'macro = d.image_inference_beam.user_defined_macros["beam_job_options"]\n'
      'try:\n'
      '  macro(params, "2024-06-01")\n'
      '  refused["job_options"] = False\n'
      'except ValueError as e:\n'
      '  refused["job_options"] = str(e)\n'
      'schema = d.image_inference_beam.params.get_param("model").schema\n'
      'print(json.dumps({"refused": refused, "enum": schema.get("enum"),\n'
      '                  "default": default}))\n',
      model='/models/b', models='["/models/a", "/models/b"]'))
  assert found['enum'] == ['/models/a', '/models/b'] and found['default'] == '/models/b'
  assert found['refused'][BEAM_DAG] and found['refused'][DATAFLOW_DAG]
  assert 'not one of the allowed models' in found['refused']['job_options']


def test_killed_flink_task_cancels_its_job_through_flinks_rest_api(airflow):
  """cancel_flink_jobs against a stand-in for Flink's REST API: only this run's job, only if not ended."""
  calls = json.loads(airflow.python(
      'import json, threading, http.server, image_inference_dags as d, image_inference_operator as o\n'
      'calls = []\n'
      'jobs = [{"jid": "a1", "name": "image-inference-beam-2024-06-01", "state": "RUNNING"},\n'
      '        {"jid": "b2", "name": "image-inference-beam-2024-06-01", "state": "FINISHED"},\n'
      '        {"jid": "c3", "name": "other", "state": "RUNNING"}]\n'
      'class Flink(http.server.BaseHTTPRequestHandler):\n'
      '  def _reply(self, body):\n'
      '    calls.append([self.command, self.path])\n'
      '    data = json.dumps(body).encode()\n'
      '    self.send_response(202 if self.command == "PATCH" else 200)\n'
      '    self.send_header("Content-Length", str(len(data)))\n'
      '    self.end_headers()\n'
      '    self.wfile.write(data)\n'
      '  def do_GET(self):\n'
      '    self._reply({"jobs": jobs})\n'
      '  def do_PATCH(self):\n'
      '    self._reply({})\n'
      '  def log_message(self, *args):\n'
      '    pass\n'
      'server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flink)\n'
      'threading.Thread(target=server.serve_forever, daemon=True).start()\n'
      'name = d.flink_job_name("image_inference_beam", "2024-06-01")\n'
      'cancelled = o.cancel_flink_jobs(f"127.0.0.1:{server.server_port}", name)\n'
      'print(json.dumps({"cancelled": cancelled, "calls": calls}))\n'))
  assert calls == {'cancelled': ['a1'], 'calls': [['GET', '/jobs/overview'], ['PATCH', '/jobs/a1?mode=cancel']]}
