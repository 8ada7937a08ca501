"""The defaults pipeline/local_defaults.py picks for the runner, unless the user chose otherwise."""
from apache_beam.options.pipeline_options import DebugOptions, DirectOptions, PipelineOptions, PortableOptions

from pipeline import local_defaults
from tests import gcs


def _applied(argv):
  options = PipelineOptions(argv)
  local_defaults.apply(argv, options)
  return options


def test_the_local_runner_gets_a_worker_process_per_core_unless_told():
  direct = _applied([]).view_as(DirectOptions)
  assert (direct.direct_num_workers, direct.direct_running_mode) == (0, 'multi_processing')
  given = ['--direct_num_workers=1', '--direct_running_mode=in_memory']
  direct = _applied(given).view_as(DirectOptions)
  assert (direct.direct_num_workers, direct.direct_running_mode) == (1, 'in_memory')


def test_flink_jobs_skip_the_package_list_and_keep_a_given_worker_count():
  unreachable = f'localhost:{gcs.free_port()}'  # nothing listens: the slots cannot be asked
  options = _applied(['--runner=FlinkRunner', f'--flink_master={unreachable}'])
  assert options.view_as(DebugOptions).lookup_experiment(local_defaults.NO_PACKAGE_LIST)
  assert int(options.view_as(PortableOptions).sdk_worker_parallelism) == 1  # Beam's default, when Flink is not asked
  given = _applied(['--runner=FlinkRunner', f'--flink_master={unreachable}', '--sdk_worker_parallelism=3',
                    '--experiments=use_deprecated_read'])
  assert int(given.view_as(PortableOptions).sdk_worker_parallelism) == 3
  assert given.view_as(DebugOptions).experiments == ['use_deprecated_read', local_defaults.NO_PACKAGE_LIST]
  assert not _applied([]).view_as(DebugOptions).lookup_experiment(local_defaults.NO_PACKAGE_LIST)
