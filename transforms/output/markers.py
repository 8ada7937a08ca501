"""A read unit's commit: its parts, then its marker, which is the commit point; what a marker is worth later.

A unit's rows and error rows are written as one Parquet part per dataset,
`part-UNITKEY-ATTEMPT.parquet`, each written beside (`_inprogress-...`, a name
readers skip) and renamed into place: whole or not at all. Then the marker,
`_units/UNITKEY.json`, likewise: it names the unit, its fingerprint, its counts
and its parts. A unit is committed when its marker exists; parts that no marker
names (a worker died before the marker, a retried bundle wrote the unit again
under another attempt) are orphans the commit step deletes. The marker's
counts make the job's tally: nothing has to be read back to count. Before its
parts and again before its marker, the unit checks that its run still holds the
output's lease (lease.check_held): a worker of a stopped run writes nothing once
another run may own the output.
"""
import io
import logging
import uuid
from typing import Dict, List, Optional

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms.output import files, lease
from transforms.output.layout import DATASETS, ERRORS_DIR, IN_PROGRESS_PREFIX, PREDICTIONS_DIR, Layout, part_name


def write_part(folder: str, name: str, rows: List[dict], schema: pa.Schema) -> None:
  """Rows -> folder/name, whole or not at all."""
  buffer = io.BytesIO()
  pq.write_table(pa.Table.from_pylist(rows, schema), buffer)
  temp = files.join(folder, IN_PROGRESS_PREFIX + name)
  with FileSystems.create(temp) as f:
    f.write(buffer.getvalue())
  files.move(temp, files.join(folder, name))


def commit_unit(layout: Layout, key: str, end, rows: Dict[str, List[dict]], schemas: Dict[str, pa.Schema]) -> dict:
  """Writes a complete unit's parts, then its marker; returns the marker. `end`: the unit's UnitEnd."""
  attempt = uuid.uuid4().hex[:8]
  errors_by_stage: Dict[str, int] = {}
  for row in rows[ERRORS_DIR]:
    errors_by_stage[row['stage']] = errors_by_stage.get(row['stage'], 0) + 1
  marker = {'unit': end.unit, 'key': key, 'fingerprint': end.fingerprint, 'run': layout.run_id,
            'records': end.records, 'rows': len(rows[PREDICTIONS_DIR]), 'errors_by_stage': errors_by_stage,
            'unread': list(end.unread), 'parts': {}}
  what = f'read unit {end.unit}'
  lease.check_held(layout.output, layout.run_id, what)
  for name in DATASETS:
    if rows[name]:
      marker['parts'][name] = part_name(key, attempt)
      write_part(layout.parts(name), marker['parts'][name], rows[name], schemas[name])
  lease.check_held(layout.output, layout.run_id, what)  # the parts took a while: the marker is the commit
  files.write_json(layout.marker(key), marker)
  return marker


def part_paths(layout: Layout, marker: dict) -> Dict[str, str]:
  return {name: files.join(layout.parts(name), part) for name, part in marker['parts'].items()}


def still_committed(layout: Layout, path: str, fingerprint: str) -> Optional[dict]:
  """The marker at path if its unit is done and still what the input holds: same fingerprint, parts present
  with the rows it counted (from their footers); else None, and the unit is read again. So is a unit that
  storage would not give whole (its marker lists unread locations): storage may give it now."""
  try:
    marker = files.read_json(path)
    if marker is None or marker.get('fingerprint') != fingerprint or marker['unread']:
      return None
    expected = {PREDICTIONS_DIR: marker['rows'], ERRORS_DIR: sum(marker['errors_by_stage'].values())}
    found = {name: files.count_rows([p]) for name, p in part_paths(layout, marker).items()}
    if any(found.get(name, 0) != expected[name] for name in DATASETS):
      logging.warning('resume: %s does not hold what its marker %s counts; read again', marker['unit'], path)
      return None
    return marker
  except Exception as e:  # pylint: disable=broad-except  # an unreadable marker or part: the unit is done again
    logging.warning('resume: %s is unreadable, its unit is read again: %s', path, e)
    return None


def read_rows(layout: Layout, marker: dict, columns: Optional[List[str]] = None) -> List[dict]:
  """The rows of a committed unit's predictions part (only `columns` when given)."""
  path = part_paths(layout, marker).get(PREDICTIONS_DIR)
  if path is None:
    return []
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return pq.read_table(io.BytesIO(f.read()), columns=columns).to_pylist()
