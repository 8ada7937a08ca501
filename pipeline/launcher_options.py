"""Options of the launcher alone (what it does around the job it waits for), and the switches all options use.

Apart from ImageOptions because a launch that does not wait for its job (a
Dataflow Flex Template) has no use for them: they are not template parameters.
Also the Java job server's options that Beam's Python SDK passes on only when
it knows them (JavaJobServerOptions).
"""
import argparse

from apache_beam.options.pipeline_options import PipelineOptions


def flag(value: str) -> bool:
  """A switch given alone (--whiten) or with a value (--whiten=true), as Dataflow's template launcher passes it."""
  if value.lower() in ('true', 'yes', '1'):
    return True
  if value.lower() in ('false', 'no', '0'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, not {value!r}')


def switch(group, name: str, text: str, default: bool = False) -> None:
  group.add_argument(name, nargs='?', const=True, default=default, type=flag, metavar='true|false', help=text)


class LauncherOptions(PipelineOptions):
  """--report (and --noreport), --estimate."""

  @classmethod
  def _add_argparse_args(cls, parser):
    launcher = parser.add_argument_group('launcher', 'What the launcher does around a run it waits for.')
    switch(launcher, '--report', 'At the end of the run, write OUTPUT/report.html, the run report '
           '(docs/report.md); --report=false or --noreport to skip it.', default=True)
    launcher.add_argument('--noreport', dest='report', action='store_false', help='Same as --report=false (the report is written by default).')
    switch(launcher, '--estimate', 'Do not run the job: estimate its wall time and core-hours from a sample '
           '(python -m pipeline.estimate, which takes the same options).')


class JavaJobServerOptions(PipelineOptions):
  """Options of Beam's Java job server (Flink) that the Python SDK would drop as unknown: declared, they reach it."""

  @classmethod
  def _add_argparse_args(cls, parser):
    java = parser.add_argument_group('job server', "Options for Beam's Java job server (templates/flink).")
    java.add_argument('--pipeline_resources_detector_factory_class', default=None,
                      help='The Java class that lists the jars each job ships to the cluster (Beam\'s '
                      'PipelineResourcesOptions); `flink.sh flags` names one that ships none, as its cluster '
                      'has the runner\'s classes already.')
