"""The command line around the job's options: `--help`, and refusing an option nobody knows.

Beam's own parser drops an unknown option with a warning, so a typo (--top-k)
would silently change what a job does; here it fails before any work, with
the closest known name.
"""
import argparse
import difflib
from typing import Sequence

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners import runner as beam_runner

from pipeline.launcher_options import LauncherOptions
from pipeline.options import REMOVED, ImageOptions, OptionsError

HELP_FLAGS = ('-h', '--help')
JOB_PROG = 'python -m pipeline'
_USAGE = f'{JOB_PROG} --input INPUT --output OUTPUT --model MODEL [options]'
_DESCRIPTION = ('Labels and embeds images with a model inside an Apache Beam batch job and writes\n'
                'the results as Parquet (README.md tells more).')
_EPILOG = """\
Switches (--overwrite, --resume, --analyze_embeddings, --whiten, --estimate) are
off unless given, --report is on; they also take =true or =false, as the
Dataflow template passes them.

Beam's options pass through: --runner (default DirectRunner; DataflowRunner,
FlinkRunner, ...), --direct_num_workers and --direct_running_mode (on the local
runner this job starts one worker process per core unless told otherwise),
--temp_location, --project, --region, --no_auth (anonymous gs:// access),
--setup_file, --sdk_container_image, --environment_type, --flink_master,
--dry_run and the others. What each runner takes:
  https://beam.apache.org/documentation/runners/
Every Beam option (the pipeline_options module):
  https://beam.apache.org/releases/pydoc/current/apache_beam.options.pipeline_options.html

An option that neither this job nor Beam knows is refused with exit code 2, as
is a bad value, before any work starts.
"""


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
  """Shows each option's default, unless its help already says it or it has none (None, or off)."""

  def _get_help_string(self, action):
    text = action.help or ''
    if action.default not in (None, False, argparse.SUPPRESS) and 'default' not in text:
      text += ' (default: %(default)s)'
    return text


def job_help() -> str:
  """What `python -m pipeline --help` prints: every job option with its default and meaning, by group."""
  parser = argparse.ArgumentParser(prog=JOB_PROG, usage=_USAGE, description=_DESCRIPTION,
                                   epilog=_EPILOG, formatter_class=DefaultsHelpFormatter)
  ImageOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  LauncherOptions._add_argparse_args(parser)  # pylint: disable=protected-access
  return parser.format_help()


def wants_help(argv: Sequence[str]) -> bool:
  return any(arg in HELP_FLAGS for arg in argv)


def _import_runner(name) -> None:
  """Imports the chosen runner's module, which may define options of its own (RenderRunner, DaskRunner)."""
  if isinstance(name, str):
    try:
      beam_runner.create_runner(name)
    except Exception:  # pylint: disable=broad-except  # an unknown runner is Beam's to report, later
      pass


def _all_options_parser() -> argparse.ArgumentParser:
  """The parser Beam builds from every PipelineOptions class (ours, Beam's, the runner's) to read options."""
  captured = []
  PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
  parser = captured[0]

  def error(message):
    if message.startswith('ambiguous option: '):
      return  # as Beam's parser does: argparse then reports the option as unknown
    raise OptionsError(message)

  parser.error = error  # a bad value (--top_k x) is an OptionsError, not argparse's usage dump and exit
  return parser


def _normal(flag: str) -> str:
  return flag.lstrip('-').replace('-', '_').lower()


def _suggestion(flag: str, known: Sequence[str]) -> str:
  by_name = {_normal(k): k for k in known}
  close = difflib.get_close_matches(_normal(flag), list(by_name), n=1)
  return f' (did you mean {by_name[close[0]]}?)' if close else ''


def check_known(argv: Sequence[str], prog: str = JOB_PROG, own: Sequence[str] = ()) -> None:
  """Refuses an option that neither the job nor any Beam PipelineOptions class knows, and a stray argument,
  naming the closest known option; Beam itself would only log a warning and drop them. Raises OptionsError.

  prog names the command in the message; own are options of another tool (already taken out of argv) that
  may be suggested."""
  argv = [arg for arg in argv if arg not in HELP_FLAGS]
  for flag in (arg.split('=', 1)[0] for arg in argv):
    if flag in REMOVED:
      raise OptionsError(f'{flag} is no longer an option: {REMOVED[flag]}')
  parser = _all_options_parser()
  known, unknown = parser.parse_known_args(argv)
  if unknown:  # perhaps the runner's own options: import its module, which defines them, and look again
    _import_runner(known.runner)
    parser = _all_options_parser()
    _, unknown = parser.parse_known_args(argv)
  flags = [arg.split('=', 1)[0] for arg in unknown if arg.startswith('-')]
  if flags:
    actions = parser._actions  # pylint: disable=protected-access
    names = list(own) + [s for action in actions for s in action.option_strings]
    named = ', '.join(f'{flag}{_suggestion(flag, names)}' for flag in flags)
    what = ('option', 'it') if len(flags) == 1 else ('options', 'them')
    raise OptionsError(f'unknown {what[0]} {named}: neither {prog} nor Beam knows {what[1]} '
                       f'({prog} --help lists the options)')
  if unknown:
    raise OptionsError(f'unexpected argument {unknown[0]!r}: every value belongs to an option (--name value); '
                       'quote globs so that the shell does not expand them')
