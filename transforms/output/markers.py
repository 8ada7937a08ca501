"""A read unit's commit: its parts, then its marker, which is the commit point; what a marker is worth later.

A unit's rows and error rows are written as one Parquet part per dataset,
`part-UNITKEY-ATTEMPT.parquet`, each written beside (`_inprogress-...`, a name
readers skip) as the rows arrive, a row group at a time, and renamed into place
once the unit is complete: whole or not at all, and a unit's size costs no
memory. Then the marker, `_units/UNITKEY-ATTEMPT.json`, likewise: it names the
unit, its fingerprint, its counts and its parts. A unit is committed when its
marker exists; markers and parts the job did not keep (a worker died before the
marker, a retried bundle wrote the unit again under another attempt) are
orphans the commit step deletes, and no attempt overwrites another's. The
marker's counts make the job's tally: nothing has to be read back to count.
Before its first part, before renaming its parts into place and before its
marker, the unit checks that its run still holds the output's lease, unsealed
(lease.check_held): a worker of a stopped run writes nothing once another run
may own the output, nor one of a cancelled attempt once the commit has begun.
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


ROW_GROUP_ROWS = 1024  # rows a part holds in memory before it writes them out as one Parquet row group


class PartWriter:
  """One dataset's part of a unit, written as its rows arrive, a row group at a time, so that a unit of any size
  costs a worker one row group of memory; beside its place (_inprogress-...) until close() renames it in: whole or
  not at all. One never closed (its bundle failed) is an orphan the commit deletes."""

  def __init__(self, folder: str, name: str, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS):
    self._temp, self._final = files.join(folder, IN_PROGRESS_PREFIX + name), files.join(folder, name)
    self._schema, self._group = schema, row_group_rows
    self._file = FileSystems.create(self._temp)
    self._writer = pq.ParquetWriter(self._file, schema)
    self._rows: List[dict] = []
    self.count = 0

  def add(self, row: dict) -> None:
    self._rows.append(row)
    self.count += 1
    if len(self._rows) >= self._group:
      self._flush()

  def _flush(self) -> None:
    if self._rows:
      self._writer.write_table(pa.Table.from_pylist(self._rows, self._schema))
      self._rows = []

  def close(self) -> None:
    self._flush()
    self._writer.close()
    self._file.close()
    files.move(self._temp, self._final)

  def abandon(self) -> None:
    """Closes and deletes the unfinished file (the unit is written again under another attempt); what is left,
    if that fails too, is an orphan the commit deletes."""
    try:
      self._writer.close()
      self._file.close()
      files.delete_files([self._temp])
    except Exception:  # pylint: disable=broad-except  # an orphan either way
      logging.warning('could not delete the unfinished part %s; the commit will', self._temp)


def write_part(folder: str, name: str, rows: List[dict], schema: pa.Schema) -> None:
  """Rows -> folder/name, whole or not at all."""
  part = PartWriter(folder, name, schema)
  for row in rows:
    part.add(row)
  part.close()


class UnitParts:
  """A read unit's parts, written as its rows and error rows arrive (add), then its marker (commit).

  Before its first part and again before its marker, the unit checks that its run still holds the output's
  lease: a worker of a stopped run writes nothing once another run may own the output.
  """

  def __init__(self, layout: Layout, key: str, schemas: Dict[str, pa.Schema]):
    self._layout, self._key, self._schemas = layout, key, schemas
    self._attempt = uuid.uuid4().hex[:8]
    self._parts: Dict[str, PartWriter] = {}
    self.errors_by_stage: Dict[str, int] = {}

  def rows(self, name: str) -> int:
    return self._parts[name].count if name in self._parts else 0

  def add(self, name: str, row: dict, unit: str) -> None:
    part = self._parts.get(name)
    if part is None:
      lease.check_held(self._layout.output, self._layout.run_id, f'read unit {unit}')
      part = self._parts[name] = PartWriter(self._layout.parts(name), part_name(self._key, self._attempt),
                                            self._schemas[name])
    part.add(row)
    if name == ERRORS_DIR:
      self.errors_by_stage[row['stage']] = self.errors_by_stage.get(row['stage'], 0) + 1

  def commit(self, end) -> dict:
    """Closes the parts into place, then writes the marker; returns it. `end`: the unit's UnitEnd."""
    marker = {'unit': end.unit, 'key': self._key, 'fingerprint': end.fingerprint, 'run': self._layout.run_id,
              'records': end.records, 'rows': self.rows(PREDICTIONS_DIR), 'errors_by_stage': self.errors_by_stage,
              'unread': list(end.unread), 'stopped': list(end.stopped), 'counts': dict(end.counts),
              'attempt': self._attempt, 'parts': {}}
    # the unit took a while: no part goes into place once the commit has begun, nor the marker after the parts
    lease.check_held(self._layout.output, self._layout.run_id, f'read unit {end.unit}')
    for name in DATASETS:
      if name in self._parts:
        self._parts[name].close()
        marker['parts'][name] = part_name(self._key, self._attempt)
    lease.check_held(self._layout.output, self._layout.run_id, f'read unit {end.unit}')
    files.write_json(self._layout.marker(self._key, self._attempt), marker)
    return marker

  def abandon(self) -> None:
    for part in self._parts.values():
      part.abandon()


def commit_unit(layout: Layout, key: str, end, rows: Dict[str, List[dict]], schemas: Dict[str, pa.Schema]) -> dict:
  """Writes a complete unit's parts, then its marker; returns the marker. `end`: the unit's UnitEnd."""
  unit = UnitParts(layout, key, schemas)
  for name in DATASETS:
    for row in rows[name]:
      unit.add(name, row, end.unit)
  return unit.commit(end)


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
