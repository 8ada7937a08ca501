"""TFRecord framing: TF reads what we write, we read what TF writes, and any cut of a file into
ranges yields every record once, even around damage."""
import gzip
import io
import random

import pytest
import tensorflow as tf

from transforms.read.formats import tfrecord


def _payloads(count, seed=0, zeros_every=3):
  """Record payloads of varied sizes; some full of zero bytes, the worst case for finding boundaries."""
  rng = random.Random(seed)
  out = []
  for i in range(count):
    size = rng.choice([0, 1, 7, 100, 3000, 20000])
    out.append(bytes(size) if i % zeros_every == 0 else rng.randbytes(size))
  return out


def _file(payloads):
  return b''.join(tfrecord.encode_record(p) for p in payloads)


def _read(data, start=0, end=None):
  return list(tfrecord.RecordReader(io.BytesIO(data), len(data)).read(start, end))


def _read_in_ranges(data, step):
  items = []
  for start in range(0, len(data), step):
    items.extend(_read(data, start, min(start + step, len(data))))
  return items


def test_tensorflow_reads_what_we_write(tmp_path):
  payloads = _payloads(50)
  path = tmp_path / 'ours.tfrecord'
  path.write_bytes(_file(payloads))
  assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == payloads


def test_we_read_what_tensorflow_writes(tmp_path):
  payloads = _payloads(50, seed=1)
  path = str(tmp_path / 'theirs.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for p in payloads:
      writer.write(p)
  with open(path, 'rb') as f:
    items = list(tfrecord.RecordReader(f, len(open(path, 'rb').read())).read())
  assert [r.data for r in items] == payloads
  assert all(isinstance(r, tfrecord.Record) for r in items)


def test_gzip_stream_read_without_size(tmp_path):
  payloads = _payloads(30, seed=2)
  path = str(tmp_path / 'theirs.tfrecord.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for p in payloads:
      writer.write(p)
  with gzip.open(path, 'rb') as f:
    assert [r.data for r in tfrecord.RecordReader(f).read()] == payloads


@pytest.mark.parametrize('step', [3, 17, 4096, 10_000, 1 << 20])
def test_any_cut_into_ranges_yields_each_record_once_in_order(step):
  payloads = _payloads(40, seed=3)
  data = _file(payloads)
  items = _read_in_ranges(data, step)
  assert [r.data for r in items] == payloads
  offsets = [r.offset for r in items]
  assert offsets == sorted(offsets) and offsets[0] == 0


def test_split_ranges_cover_the_file():
  for size in (0, 1, 5 << 20, 100 << 20, 10 << 30):
    ranges = tfrecord.split_ranges(size)
    assert ranges[0][0] == 0 and ranges[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert len(ranges) <= max(1, size // tfrecord.MIN_SPLIT_BYTES)
  assert len(tfrecord.split_ranges(100 << 20)) == tfrecord.SPLITS_PER_FILE
  assert len(tfrecord.split_ranges(1 << 20)) == 1


def _damage(data, offset, value=0xFF):
  damaged = bytearray(data)
  damaged[offset] ^= value
  return bytes(damaged)


def _accounting(items, size):
  """Every byte is in exactly one record or bad range, in order."""
  pos = 0
  for item in items:
    start = item.offset if isinstance(item, tfrecord.Record) else item.start
    end = start + len(item.data) + tfrecord.OVERHEAD if isinstance(item, tfrecord.Record) else item.end
    assert start == pos, (start, pos, item)
    pos = end
  assert pos == size


@pytest.mark.parametrize('where, reason', [(2, 'length CRC'), (tfrecord.HEADER_BYTES + 5, 'data CRC'),
                                           (9, 'length CRC')])
@pytest.mark.parametrize('step', [None, 7, 1000, 5000])
def test_damaged_record_in_the_middle_costs_only_that_record(where, reason, step):
  payloads = _payloads(30, seed=4, zeros_every=100)
  data = _file(payloads)
  victim = 12
  offset = sum(len(p) + tfrecord.OVERHEAD for p in payloads[:victim])
  payloads[victim] = payloads[victim] or b'x'  # data damage needs data
  data = _file(payloads)
  damaged = _damage(data, offset + min(where, tfrecord.HEADER_BYTES + len(payloads[victim]) - 1))
  items = _read(damaged) if step is None else _read_in_ranges(damaged, step)
  good = [r.data for r in items if isinstance(r, tfrecord.Record)]
  bad = [r for r in items if isinstance(r, tfrecord.BadRange)]
  assert good == payloads[:victim] + payloads[victim + 1:]
  assert len(bad) == 1 and bad[0].start == offset and reason in bad[0].reason
  assert bad[0].end == offset + len(payloads[victim]) + tfrecord.OVERHEAD
  _accounting(items, len(damaged))


def test_damage_right_at_a_range_start_is_reported_once():
  payloads = _payloads(10, seed=5, zeros_every=100)
  data = _file(payloads)
  offset = sum(len(p) + tfrecord.OVERHEAD for p in payloads[:4])
  damaged = _damage(data, offset + 1)
  items = _read(damaged, 0, offset) + _read(damaged, offset, len(damaged))
  assert [r.start for r in items if isinstance(r, tfrecord.BadRange)] == [offset]
  assert len([r for r in items if isinstance(r, tfrecord.Record)]) == 9
  _accounting(items, len(damaged))


def test_truncated_file_reports_the_tail():
  payloads = _payloads(5, seed=6, zeros_every=100)
  data = _file(payloads)
  cut = data[:-10]
  items = _read(cut)
  assert [r.data for r in items[:-1]] == payloads[:-1]
  assert isinstance(items[-1], tfrecord.BadRange) and 'truncated' in items[-1].reason
  _accounting(items, len(cut))


def test_not_a_tfrecord_file_is_one_bad_range():
  data = b'<html>' + bytes(range(256)) * 50 + b'</html>'
  for step in (None, 100, 1000):
    items = _read(data) if step is None else _read_in_ranges(data, step)
    assert len(items) == 1 and isinstance(items[0], tfrecord.BadRange)
    assert (items[0].start, items[0].end) == (0, len(data))


def test_damage_in_gzip_stream_resyncs(tmp_path):
  payloads = _payloads(20, seed=7, zeros_every=100)
  data = _damage(_file(payloads), 3)
  items = list(tfrecord.RecordReader(io.BytesIO(gzip.decompress(gzip.compress(data)))).read())
  assert [r.data for r in items if isinstance(r, tfrecord.Record)] == payloads[1:]
  _accounting(items, len(data))
