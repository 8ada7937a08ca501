"""--compare: what changed between two runs' outputs, joined by id with pyarrow.

The joins hold each run's ids and top-1 labels (dictionary-encoded) in
memory, about (id length + 8) bytes a row per run; the counts are exact.
"""
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.report import aggregate

CHANGED_SAMPLE = 20


def _ids_and_labels(path: str, label_column: Optional[str]) -> pa.Table:
  columns = ['id'] + ([label_column] if label_column else [])
  parts = []
  for batch in aggregate.batches(aggregate.dataset(path), columns):
    part = {'id': batch.column('id')}
    if label_column:
      part['label'] = pc.dictionary_encode(aggregate.top1_strings(batch, label_column)).cast(
          pa.dictionary(pa.int32(), pa.string()))
    parts.append(pa.table(part))
  if not parts:
    return pa.table({'id': pa.array([], pa.string())})
  return pa.concat_tables(parts, promote_options='permissive').unify_dictionaries()


def _added_lost(mine: pa.Table, theirs: pa.Table) -> dict:
  """Ids in this run and not the other (added), and the reverse (lost); counted once per distinct id."""
  a, b = mine.select(['id']).group_by('id').aggregate([]), theirs.select(['id']).group_by('id').aggregate([])
  return {'added': a.join(b, 'id', join_type='left anti').num_rows,
          'lost': b.join(a, 'id', join_type='left anti').num_rows}


def compare(path: str, other: str, label_column: Optional[str], other_label_column: Optional[str]) -> dict:
  """Changed top-1 labels (count and a sample with both labels), rows and error rows added or lost."""
  mine = _ids_and_labels(f'{path}/predictions', label_column)
  theirs = _ids_and_labels(f'{other}/predictions', other_label_column)
  out = {'rows': _added_lost(mine, theirs), 'changed': 0, 'changed_sample': [], 'compared': 0}
  if 'label' in mine.column_names and 'label' in theirs.column_names:
    mine = mine.set_column(1, 'label', pc.cast(mine['label'], pa.string()))
    theirs = theirs.set_column(1, 'label', pc.cast(theirs['label'], pa.string()))
    joined = mine.join(theirs, 'id', join_type='inner', left_suffix='', right_suffix='_other',
                       coalesce_keys=True)
    changed = joined.filter(pc.not_equal(joined['label'], joined['label_other']))
    out['compared'] = joined.num_rows
    out['changed'] = changed.num_rows
    out['changed_sample'] = changed.sort_by('id').slice(0, CHANGED_SAMPLE).to_pylist()
  errors = [pa.Table.from_batches(list(aggregate.batches(aggregate.dataset(f'{p}/errors'), ['id'])),
                                  schema=pa.schema([pa.field('id', pa.string())])) for p in (path, other)]
  out['errors'] = _added_lost(*errors)
  return out
