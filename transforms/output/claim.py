"""The launch-time claim on --output: a new run refuses a used output, --overwrite clears it, --resume checks
that it continues the same job. Runs in the launcher, before any work."""
from typing import List

from apache_beam.io.filesystems import FileSystems

from transforms.output import files, lease
from transforms.output.layout import (DATASETS, JOB_FILE, MANIFEST_FILE, STAGING_DIR, SUMMARY_FILE, TRANSFORM_DIR,
                                      UNIT_PARTS_DIR, UNITS_DIR)

NEW, OVERWRITE, RESUME = 'new', 'overwrite', 'resume'
MODEL_DIGEST = 'model_sha256'  # in job.json, beside the options


class OutputError(ValueError):
  """An output the job must not or cannot write to; the message says what to do."""


def used(output: str) -> List[str]:
  """What shows that a job wrote here before."""
  used = [name for name in (JOB_FILE, SUMMARY_FILE) if FileSystems.exists(files.join(output, name))]
  used += [f'{name}/' for name in DATASETS if files.list_files(files.join(output, name, '**'))]
  return used


# Options that name the read units: resumed with another value, every unit would be renamed, the commit would
# drop every earlier part and the whole job would be done again.
UNIT_NAMING = {'files_per_unit': 'it cuts the image files into read units: with another value nearly every file '
                                 'would be read again'}


def _differences(before: dict, now: dict) -> List[str]:
  keys = sorted(set(before) | set(now))
  return [f'{key}: {before.get(key)!r} then, {now.get(key)!r} now' + (f' ({UNIT_NAMING[key]})' if key in UNIT_NAMING
                                                                      else '')
          for key in keys if before.get(key) != now.get(key)]


def _check_same_job(output: str, job: dict) -> None:
  previous = files.read_json(files.join(output, JOB_FILE)) or {}
  before = {k: v for k, v in previous.items() if k != MODEL_DIGEST}
  changed = _differences(before, {k: v for k, v in job.items() if k != MODEL_DIGEST})
  if changed:
    raise OutputError(f'--resume: {output} was written with other options ({"; ".join(changed)}); resume with '
                      'the same options, or pass --overwrite to start over')
  if previous.get(MODEL_DIGEST) != job.get(MODEL_DIGEST):
    raise OutputError(f'--resume: the model at {job.get("model")} is not the one that wrote {output} (its files '
                      'changed); pass --overwrite to start over with it')


def claim(output: str, mode: str, job: dict, run_id: str) -> None:
  """Makes the output ready for a run, before any work (what a resumed run skips, the job itself finds).

  First takes the output's lease for the run (lease.py; refused if another run holds it, a
  stale one taken over with --resume or --overwrite), released again if the claim fails.
  new: refuses an output a job wrote before. overwrite: deletes it (summary.json first, so that it is
  never mistaken for complete). resume: checks that the previous run had the same options and model,
  then marks the output incomplete.
  """
  try:
    lease.acquire(output, run_id, take_over_stale=mode in (OVERWRITE, RESUME))
  except lease.Held as e:
    raise OutputError(str(e)) from e
  except OSError as e:
    raise OutputError(f'cannot write to --output {output}: {e}') from e
  try:
    _claim(output, mode, job)
  except BaseException:
    lease.release(output, run_id)
    raise


def _claim(output: str, mode: str, job: dict) -> None:
  found = used(output)
  if mode == NEW and found:
    raise OutputError(f'--output {output} already holds a job\'s output ({", ".join(found)}): pass --overwrite '
                      'to replace it or --resume to continue it')
  if mode == RESUME and found:
    _check_same_job(output, job)
  if found and mode in (OVERWRITE, RESUME):
    # first: from here on the output reads as incomplete
    files.delete_files([files.join(output, SUMMARY_FILE), files.join(output, MANIFEST_FILE)])
    files.delete_tree(files.join(output, TRANSFORM_DIR))  # analysis results are recomputed over all rows
  if mode == OVERWRITE:
    for name in DATASETS + (STAGING_DIR, UNITS_DIR, UNIT_PARTS_DIR):
      files.delete_tree(files.join(output, name))
  try:
    files.write_json(files.join(output, JOB_FILE), job)
  except Exception as e:  # pylint: disable=broad-except
    raise OutputError(f'cannot write to --output {output}: {e}') from e
