"""Airflow DAGs that run the image inference job on a schedule; drop this file into Airflow's dags folder, with
image_inference_operator.py beside it.

Two variants, built by the factories below:
- beam_dag: BeamPipelineOperator (image_inference_operator.py: the provider's BeamRunPythonPipelineOperator, which
  stops the job when the task is killed and fails with the job's reason) runs `python -m pipeline` with an
  interpreter whose environment has this project installed, on the DirectRunner or on Flink (the `runner` param
  chooses per run);
- flex_template_dag: DataflowStartFlexTemplateOperator launches the Dataflow Flex Template
  (templates/dataflow/), whose parameters are the pipeline's options by name.
Input, output, task and labels are DAG params; each run writes under OUTPUT/<ds>/. The model is a param
restricted to an allow-list, a deployment setting (a SavedModel or a TF1 module is a program: whoever triggers
a run must not choose one). Deployment settings (interpreter, models, template, project, ...) come from
IMAGE_INFERENCE_* environment variables read at the bottom. Needs Airflow 3. See templates/airflow/README.md.
"""
import datetime
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pendulum
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator
from airflow.sdk import DAG, Param
from image_inference_operator import BeamPipelineOperator  # beside this file in the dags folder

TASKS = ('classify', 'embed', 'both')
RUNNERS = ('DirectRunner', 'FlinkRunner')
DS = '{ds}'  # in the input param, replaced by the run's logical date (YYYY-MM-DD)


def job_options(params: Mapping[str, Any], ds: str, extra: Optional[Mapping[str, Any]] = None,
                allowed_models: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """The pipeline's options for one run, named as in pipeline/options.py; an unset labels_file is left out.

  resume: a retry continues what a failed attempt finished, and a cleared day reruns over its own output
  instead of being refused (the job refuses a resume with other options or another model). A model outside
  allowed_models is refused here too, should a run's params escape the param's own check.
  """
  if allowed_models is not None and params['model'] not in allowed_models:
    raise ValueError(f'model {params["model"]!r} is not one of the allowed models (IMAGE_INFERENCE_MODELS)')
  options = dict(extra or {})
  options.update(input=params['input'].replace(DS, ds), output=f'{params["output"].rstrip("/")}/{ds}',
                 model=params['model'], task=params['task'], resume=True)
  if params.get('labels_file'):
    options['labels_file'] = params['labels_file']
  return options


def _allowed_models(defaults: Mapping[str, Any]) -> List[str]:
  """The deployment's allow-list of models, default first: `models`, else the one default `model`."""
  allowed = list(defaults.get('models') or [defaults['model']])
  if defaults.get('model') and defaults['model'] not in allowed:
    raise ValueError(f'the default model {defaults["model"]!r} is not in the allowed models {allowed}')
  return allowed


def _job_params(defaults: Mapping[str, Any]) -> Dict[str, Param]:
  allowed = _allowed_models(defaults)
  return {
      'input': Param(defaults['input'], type='string', minLength=1,
                     description=f'Image files: a glob, or several separated by commas; {DS} is the date.'),
      'output': Param(defaults['output'], type='string', minLength=1,
                      description='Output prefix; each run writes under OUTPUT/<logical date>/.'),
      'model': Param(defaults.get('model') or allowed[0], enum=allowed,
                     description='One of the deployment\'s allowed models (IMAGE_INFERENCE_MODELS).'),
      'task': Param(defaults.get('task', 'both'), enum=list(TASKS), description='classify, embed or both.'),
      'labels_file': Param(defaults.get('labels_file'), type=['null', 'string'],
                           description='Class names, one per line (optional).'),
  }


def _dag(dag_id: str, doc: str, params: Dict[str, Param], macros: Dict[str, Any], schedule: Optional[str],
         retries: int, timeout: datetime.timedelta) -> DAG:
  """What both variants share. Templates render as Python objects, so that option dicts stay dicts."""
  return DAG(
      dag_id=dag_id,
      doc_md=doc,
      schedule=schedule,
      start_date=pendulum.datetime(2024, 1, 1, tz='UTC'),
      catchup=False,
      max_active_runs=1,
      dagrun_timeout=timeout * (retries + 1) + datetime.timedelta(hours=1),
      params=params,
      render_template_as_native_obj=True,
      user_defined_macros=macros,
      default_args={
          'retries': retries,
          'retry_delay': datetime.timedelta(minutes=5),
          'retry_exponential_backoff': True,
          'max_retry_delay': datetime.timedelta(hours=1),
          'execution_timeout': timeout,
      },
      tags=['image-inference'],
  )


def flink_job_name(dag_id: str, ds: str) -> str:
  """The name the run's job has on Flink (--job_name), by which a killed task finds it to cancel it."""
  return f'{dag_id}-{ds}'.replace('_', '-')


def beam_dag(dag_id: str, *, python: str, runner: str = 'DirectRunner', flink_master: str = 'localhost:8081',
             beam_options: Optional[Mapping[str, Any]] = None,
             flink_options: Optional[Mapping[str, Any]] = None,
             schedule: Optional[str] = '@daily', retries: int = 2,
             timeout: datetime.timedelta = datetime.timedelta(hours=6), **defaults: Any) -> DAG:
  """Runs `python -m pipeline` with the interpreter `python`, whose environment has the project installed.

  defaults: the params' defaults (input, output, model, task, labels_file) and `models`, the allowed models (the
  model param is restricted to them). beam_options go to every run (e.g. direct_num_workers); flink_options and
  the flink_master param only to runs on the FlinkRunner (e.g. environment_type, environment_config,
  flink_version), which also get job_name (flink_job_name), by which a killed task cancels its job. Params
  cannot add other options: --setup_file and the like would let whoever triggers a run execute code on the
  worker.
  """
  def beam_job_options(params, ds):
    extra = dict(beam_options or {})
    if params['runner'] == 'FlinkRunner':
      extra.update(flink_options or {}, flink_master=params['flink_master'], job_name=flink_job_name(dag_id, ds))
    return job_options(params, ds, extra, _allowed_models(defaults))

  params = _job_params(defaults)
  params['runner'] = Param(runner, enum=list(RUNNERS), description='Beam runner.')
  params['flink_master'] = Param(flink_master, type='string', description='Flink REST address (FlinkRunner).')
  with _dag(dag_id, beam_dag.__doc__, params, {'beam_job_options': beam_job_options}, schedule, retries,
            timeout) as dag:
    BeamPipelineOperator(
        task_id='run_pipeline',
        py_interpreter=python,
        py_options=['-m'],  # python -m pipeline --runner=... --input=...: the installed package's entry point
        py_file='pipeline',
        runner='{{ params.runner }}',
        pipeline_options='{{ beam_job_options(params, ds) }}',
    )
  return dag


def flex_template_dag(dag_id: str, *, template: str, project_id: str, region: str,
                      parameters: Optional[Mapping[str, Any]] = None,
                      environment: Optional[Mapping[str, Any]] = None,
                      gcp_conn_id: str = 'google_cloud_default',
                      schedule: Optional[str] = '@daily', retries: int = 2,
                      timeout: datetime.timedelta = datetime.timedelta(hours=6), **defaults: Any) -> DAG:
  """Launches the Flex Template whose spec file is `template` (gs://...json) and waits for the job to finish.

  defaults: the params' defaults (input, output, model, task, labels_file) and `models`, the allowed models.
  parameters go to every run (more template parameters, e.g. top_k); environment is the launch's runtime
  environment (tempLocation, serviceAccountEmail, maxWorkers, machineType, ...). A task that times out or is
  killed cancels its job.
  """
  def template_parameters(params, ds):
    options = job_options(params, ds, parameters, _allowed_models(defaults))
    return {name: str(value) for name, value in options.items()}

  macros = {'template_parameters': template_parameters}
  params = _job_params(defaults)
  with _dag(dag_id, flex_template_dag.__doc__, params, macros, schedule, retries, timeout) as dag:
    DataflowStartFlexTemplateOperator(
        task_id='launch_flex_template',
        project_id=project_id,
        location=region,
        gcp_conn_id=gcp_conn_id,
        wait_until_finished=True,
        append_job_name=True,  # a unique suffix, so that a retry does not collide with the failed job's name
        body={
            'launchParameter': {
                'jobName': dag_id.replace('_', '-') + '-{{ ds_nodash }}',
                'containerSpecGcsPath': template,
                'parameters': '{{ template_parameters(params, ds) }}',
                'environment': dict(environment or {}),
            }
        },
    )
  return dag


def _env(name: str, default: Any = None) -> Any:
  """IMAGE_INFERENCE_<name>; those named *_OPTIONS, *_PARAMETERS and ENVIRONMENT hold JSON objects, MODELS a
  JSON list."""
  value = os.environ.get(f'IMAGE_INFERENCE_{name}')
  if not value:
    return default
  return json.loads(value) if name.endswith(('OPTIONS', 'PARAMETERS', 'ENVIRONMENT', 'MODELS')) else value


# The DAGs Airflow picks up, set by the environment of Airflow's DAG processor and workers (or edit here).
_common = dict(
    input=_env('INPUT', 'gs://YOUR_BUCKET/images/*'),
    output=_env('OUTPUT', 'gs://YOUR_BUCKET/image-inference'),
    model=_env('MODEL'),  # the default of the allowed models, else the first of them
    models=_env('MODELS', [_env('MODEL', 'https://tfhub.dev/google/imagenet/mobilenet_v1_050_160/quantops/'
                                'classification/1')]),
    task=_env('TASK', 'both'),
    labels_file=_env('LABELS_FILE'),
    schedule=_env('SCHEDULE', '@daily'),
    retries=int(_env('RETRIES', 2)),
    timeout=datetime.timedelta(minutes=float(_env('TIMEOUT_MINUTES', 360))),
)
image_inference_beam = beam_dag(
    'image_inference_beam',
    python=_env('PYTHON', 'python3'),
    flink_master=_env('FLINK_MASTER', 'localhost:8081'),
    beam_options=_env('BEAM_OPTIONS'),
    flink_options=_env('FLINK_OPTIONS', {  # an existing cluster (templates/flink/README.md); flink.sh's: its `flags`
        'flink_version': '1.19',
        'environment_type': 'EXTERNAL',  # the SDK worker pool beside each TaskManager
        'environment_config': 'localhost:50000',
    }),
    **_common,
)
image_inference_dataflow = flex_template_dag(
    'image_inference_dataflow',
    template=_env('TEMPLATE', 'gs://YOUR_BUCKET/templates/image-inference.json'),
    project_id=_env('PROJECT', 'YOUR_PROJECT'),
    region=_env('REGION', 'us-central1'),
    parameters=_env('TEMPLATE_PARAMETERS'),
    environment=_env('ENVIRONMENT', {'tempLocation': 'gs://YOUR_BUCKET/tmp'}),
    **_common,
)
