"""Passthrough columns: values copied from the input (a tf.Example feature, a WebDataset member or
KEY.json field) into each output row, with a Parquet type fixed before the job starts.

A column's type is declared (`--passthrough_keys label:int64,tags:list<string>`) or, when not,
inferred in the launcher from the first records of the first input file: the feature kind gives
the value type (bytes -> string, or binary if not UTF-8; int64; float32 for Example floats,
float64 for JSON numbers) and a key seen with other than exactly one value becomes a list. A
record whose value does not fit its column becomes an error row that says so, never a silently
changed value.
"""
import json
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Type

import pyarrow as pa

SCALARS = {
    'string': pa.string(),
    'bytes': pa.binary(),
    'int64': pa.int64(),
    'float32': pa.float32(),
    'float64': pa.float64(),
}
TYPES = tuple(SCALARS) + tuple(f'list<{t}>' for t in SCALARS)
# Value kinds as readers report them: bytes and str (text), int, float32 (tf.Example floats), float64 (JSON).
BYTES, TEXT, INT, FLOAT32, FLOAT64 = 'bytes', 'text', 'int64', 'float32', 'float64'


class PassthroughError(ValueError):
  """A passthrough value, key or type declaration that does not fit."""


class Values(NamedTuple):
  """What one record holds for one key."""
  kind: str
  values: Sequence[Any]


class Column(NamedTuple):
  name: str
  type: str  # one of TYPES, or a table column's Arrow type as text
  arrow: Optional[pa.DataType] = None  # a table column's own type (Parquet inputs keep theirs)

  @property
  def arrow_type(self) -> pa.DataType:
    if self.arrow is not None:
      return self.arrow
    item = SCALARS[_item_type(self.type)]
    return pa.list_(item) if self.type.startswith('list<') else item


def _item_type(type_name: str) -> str:
  return type_name[5:-1] if type_name.startswith('list<') else type_name


def parse_keys(spec: Optional[str], reserved: Iterable[str] = ()) -> Tuple[Tuple[str, Optional[str]], ...]:
  """'a,b:int64,c:list<string>' -> (('a', None), ('b', 'int64'), ('c', 'list<string>'))."""
  keys = []
  for part in (spec or '').split(','):
    part = part.strip()
    if not part:
      continue
    name, _, type_name = part.partition(':')
    name, type_name = name.strip(), type_name.strip() or None
    if not name:
      raise PassthroughError(f'--passthrough_keys: empty key name in {part!r}')
    if type_name is not None and type_name not in TYPES:
      raise PassthroughError(f'--passthrough_keys: unknown type {type_name!r} for {name!r}; '
                             f'use one of {", ".join(TYPES)}')
    if name in set(reserved):
      raise PassthroughError(f'--passthrough_keys: {name!r} is already an output column')
    if name in [k for k, _ in keys]:
      raise PassthroughError(f'--passthrough_keys: {name!r} named twice')
    keys.append((name, type_name))
  return tuple(keys)


def _utf8(value) -> bool:
  if isinstance(value, str):
    return True
  try:
    value.decode('utf-8')
    return True
  except UnicodeDecodeError:
    return False


def infer(name: str, samples: Sequence[Values]) -> str:
  """The column type that fits every sample; raises if the samples disagree or there are none."""
  if not samples:
    raise PassthroughError(f'{name!r} not found')
  kinds = {s.kind for s in samples}
  values = [v for s in samples for v in s.values]
  if kinds <= {BYTES, TEXT}:
    item = 'string' if all(_utf8(v) for v in values) else 'bytes'
  elif kinds <= {INT}:
    item = 'int64'
  elif kinds <= {INT, FLOAT32}:
    item = 'float32'
  elif kinds <= {INT, FLOAT32, FLOAT64}:
    item = 'float64'
  else:
    raise PassthroughError(f'{name!r} holds mixed kinds ({", ".join(sorted(kinds))}); declare its type')
  return item if all(len(s.values) == 1 for s in samples) else f'list<{item}>'


def _cast(item: str, kind: str, value):
  if item == 'string':
    if kind in (BYTES, TEXT):
      return value if isinstance(value, str) else value.decode('utf-8')
  elif item == 'bytes':
    if kind in (BYTES, TEXT):
      return value.encode('utf-8') if isinstance(value, str) else bytes(value)
  elif item == 'int64':
    if kind == INT:
      return int(value)
  elif kind in (INT, FLOAT32, FLOAT64):
    return float(value)
  raise PassthroughError(f'a {kind} value does not fit a {item} column')


def values(columns: Sequence[Column], found: Dict[str, Values], nulled: Dict[str, int]) -> Dict[str, Any]:
  """The record's passthrough row values; one whose type does not fit its column (the first records typed it)
  is null, counted in `nulled` by column, rather than making a good image an error."""
  row = {}
  for column in columns:
    try:
      row[column.name] = convert(column, found.get(column.name))
    except PassthroughError:
      row[column.name] = None
      nulled[column.name] = nulled.get(column.name, 0) + 1
  return row


def convert(column: Column, found: Optional[Values]):
  """The row value for one record: None when the record lacks the key."""
  if found is None:
    return None
  item = _item_type(column.type)
  try:
    cast = [_cast(item, found.kind, v) for v in found.values]
  except (PassthroughError, UnicodeDecodeError, ValueError, TypeError) as e:
    raise PassthroughError(f'passthrough key {column.name!r}: {e}') from e
  if column.type.startswith('list<'):
    return cast
  if len(cast) != 1:
    raise PassthroughError(f'passthrough key {column.name!r} has {len(cast)} values but its column holds one; '
                           f'declare it as {column.name}:list<{item}>')
  return cast[0]


def from_json(value) -> Optional[Values]:
  """A value of a parsed JSON document as Values (objects are kept as JSON text)."""
  items = value if isinstance(value, list) else [value]
  if value is None or not items:
    return None
  if all(isinstance(v, bool) or isinstance(v, int) for v in items):
    return Values(INT, [int(v) for v in items])
  if all(isinstance(v, (int, float)) for v in items):
    return Values(FLOAT64, items)
  return Values(TEXT, [v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in items])


def first_samples(items: Iterable, parse: Callable[[Any], Dict[str, Values]], unusable: Type[Exception],
                  count: int) -> List[Dict[str, Values]]:
  """parse(item) for the first `count` items it can parse (those raising `unusable` are passed over)."""
  out = []
  for item in items:
    try:
      out.append(parse(item))
    except unusable:
      continue
    if len(out) >= count:
      break
  return out


def resolve(keys: Sequence[Tuple[str, Optional[str]]], samples: List[dict], where: str) -> Tuple[Column, ...]:
  """Columns for the declared keys, inferring undeclared types from sample records ({key: Values})."""
  columns = []
  for name, type_name in keys:
    if type_name is None:
      seen = [s[name] for s in samples if name in s]
      try:
        type_name = infer(name, seen)
      except PassthroughError as e:
        raise PassthroughError(f'--passthrough_keys: {e} in the first {len(samples)} records of {where}; '
                               f'declare it as {name}:TYPE ({", ".join(TYPES)})') from e
    columns.append(Column(name, type_name))
  return tuple(columns)
