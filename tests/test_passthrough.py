"""Passthrough columns: declared or inferred types, values that fit, and values that do not."""
import pyarrow as pa
import pytest

from transforms.read.formats import passthrough
from transforms.read.formats.passthrough import Column, Values


def test_parse_keys_with_and_without_types():
  assert passthrough.parse_keys(' label:int64, url ,tags:list<string>') == (
      ('label', 'int64'), ('url', None), ('tags', 'list<string>'))
  assert passthrough.parse_keys(None) == ()


@pytest.mark.parametrize('spec, words', [('a:int', 'unknown type'), ('id', 'already an output column'),
                                         ('a,a', 'named twice'), (':int64', 'empty key name')])
def test_parse_keys_rejects(spec, words):
  with pytest.raises(passthrough.PassthroughError, match=words):
    passthrough.parse_keys(spec, reserved=('id', 'source'))


@pytest.mark.parametrize('samples, expected', [
    ([Values('bytes', [b'a']), Values('bytes', [b'b'])], 'string'),
    ([Values('bytes', [b'\xff\xfe'])], 'bytes'),
    ([Values('int64', [3]), Values('int64', [4])], 'int64'),
    ([Values('int64', [3]), Values('float32', [0.5])], 'float32'),
    ([Values('float64', [0.5])], 'float64'),
    ([Values('bytes', [b'a', b'b']), Values('bytes', [b'c'])], 'list<string>'),
    ([Values('int64', [])], 'list<int64>'),
])
def test_infer(samples, expected):
  assert passthrough.infer('k', samples) == expected


def test_infer_refuses_mixed_kinds_and_no_samples():
  with pytest.raises(passthrough.PassthroughError, match='mixed kinds'):
    passthrough.infer('k', [Values('bytes', [b'a']), Values('int64', [1])])
  with pytest.raises(passthrough.PassthroughError, match='not found'):
    passthrough.infer('k', [])


def test_convert_fits_values_to_their_column():
  assert passthrough.convert(Column('u', 'string'), Values('bytes', [b'http://x'])) == 'http://x'
  assert passthrough.convert(Column('l', 'int64'), Values('int64', [7])) == 7
  assert passthrough.convert(Column('w', 'float32'), Values('int64', [2])) == 2.0
  assert passthrough.convert(Column('t', 'list<string>'), Values('bytes', [b'a', b'b'])) == ['a', 'b']
  assert passthrough.convert(Column('t', 'list<int64>'), Values('int64', [])) == []
  assert passthrough.convert(Column('l', 'int64'), None) is None
  assert Column('t', 'list<float32>').arrow_type == pa.list_(pa.float32())


@pytest.mark.parametrize('column, values, words', [
    (Column('l', 'int64'), Values('int64', [1, 2]), 'declare it as l:list<int64>'),
    (Column('l', 'int64'), Values('bytes', [b'1']), 'does not fit'),
    (Column('s', 'string'), Values('bytes', [b'\xff']), "'s'"),
])
def test_convert_refuses_what_does_not_fit(column, values, words):
  with pytest.raises(passthrough.PassthroughError, match=words):
    passthrough.convert(column, values)


def test_a_value_of_another_type_is_null_and_counted():
  columns = (Column('l', 'int64'), Column('s', 'string'))
  nulled = {}
  row = passthrough.values(columns, {'l': Values('bytes', [b'seven']), 's': Values('bytes', [b'ok'])}, nulled)
  assert row == {'l': None, 's': 'ok'} and nulled == {'l': 1}
  assert passthrough.values(columns, {'l': Values('int64', [7])}, nulled) == {'l': 7, 's': None}  # absent: null
  assert nulled == {'l': 1}  # an absent key is not a mismatch


def test_from_json_and_resolve():
  assert passthrough.from_json('a') == Values('text', ['a'])
  assert passthrough.from_json(3) == Values('int64', [3])
  assert passthrough.from_json([1, 2.5]) == Values('float64', [1, 2.5])
  assert passthrough.from_json({'b': 1}) == Values('text', ['{"b": 1}'])
  assert passthrough.from_json(None) is None
  samples = [{'a': Values('int64', [1])}, {'a': Values('int64', [2]), 'b': Values('bytes', [b'x'])}]
  assert passthrough.resolve([('a', None), ('b', None), ('c', 'string')], samples, 'f') == (
      Column('a', 'int64'), Column('b', 'string'), Column('c', 'string'))
  with pytest.raises(passthrough.PassthroughError, match='declare it as d:TYPE'):
    passthrough.resolve([('d', None)], samples, 'f')
