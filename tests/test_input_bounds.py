"""--max_input_bytes: an image file, tar member or TFRecord record larger than the bound is an error row, refused
without being read into memory (sizes from the listing, the tar header, the record's length header; GZIP
streams skipped in chunks); the reading process's peak RSS shows nothing large was held."""
import gzip
import io
import json
import os
import pathlib
import struct
import subprocess
import sys
import tarfile
import textwrap

import pytest

from transforms import elements
from transforms.read import image_files, match, outcomes, tar_shards, tfrecord_shards
from transforms.read.formats import tf_example, tfrecord
from transforms.read.settings import MAX_INPUT_BYTES, ReadSettings

MIB = 1 << 20
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _example(i, size=2000):
  return tf_example.make_example(b'%d' % i * size, f'id{i}', f'f{i}.jpg', 'jpeg')


def _claimed_record(length: int) -> bytes:
  """A record header declaring `length` bytes (its CRC right), without the body."""
  header = struct.pack('<Q', length)
  return header + struct.pack('<I', tfrecord.masked_crc32c(header))


def write_big_tfrecord(path: pathlib.Path, big: int) -> pathlib.Path:
  """small, a `big`-byte record (sparse: zeros never written), small."""
  with open(path, 'wb') as f:
    f.write(tfrecord.encode_record(_example(0)))
    f.write(_claimed_record(big))
    f.seek(big, os.SEEK_CUR)
    f.write(b'\0' * tfrecord.FOOTER_BYTES)
    f.write(tfrecord.encode_record(_example(2)))
  return path


def write_big_tar(path: pathlib.Path, big: int, gz: bool = False) -> pathlib.Path:
  """Samples k0 (small), k1 (a `big`-byte .jpg member whose data is sparse), k2 (small), by hand."""
  def header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)
  raw = io.BytesIO() if gz else open(path, 'wb')  # pylint: disable=consider-using-with
  with raw:
    raw.write(header('k0.jpg', 3) + b'abc'.ljust(512, b'\0'))
    raw.write(header('k1.jpg', big))
    if gz:
      raw.write(b'\0' * big)
    else:
      raw.seek(big, os.SEEK_CUR)
    raw.write(header('k2.jpg', 3) + b'xyz'.ljust(512, b'\0') + b'\0' * 1024)
    if gz:
      path.write_bytes(gzip.compress(raw.getvalue(), 1))
  return path


# Unit level: each reader, without Beam.

def test_record_longer_than_the_bound_is_skipped_unread():
  data = b''.join(tfrecord.encode_record(r) for r in (_example(0), b'z' * (3 * MIB), _example(2)))
  items = list(tfrecord.RecordReader(io.BytesIO(data), len(data), MIB).read())
  assert [type(i).__name__ for i in items] == ['Record', 'TooLarge', 'Record']
  assert items[1].length == 3 * MIB and items[1].end == items[2].offset
  # Cut anywhere, ranges still give each record once (scans skip over the large record without reading it).
  for step in (64 << 10, 300 << 10, MIB):
    got = []
    for start, end in tfrecord.split_ranges(len(data), step, step):
      got += list(tfrecord.RecordReader(io.BytesIO(data), len(data), MIB).read(start, end))
    assert got == items, step
  streamed = list(tfrecord.RecordReader(io.BytesIO(data), None, MIB).read())
  assert streamed == items


def test_record_claiming_more_than_the_file_holds_is_corrupt_not_too_large(tmp_path):
  data = tfrecord.encode_record(_example(0)) + _claimed_record(5 * MIB) + b'short'
  items = list(tfrecord.RecordReader(io.BytesIO(data), len(data), MIB).read())
  assert isinstance(items[-1], tfrecord.BadRange) and 'truncated' in items[-1].reason


def _process(fn, element):
  return [(o.tag, o.value) if hasattr(o, 'tag') else ('images', o) for o in fn.process(element)]


def test_tfrecord_reader_error_row(tmp_path):
  path = write_big_tfrecord(tmp_path / 'a.tfrecord', 4 * MIB)
  size = path.stat().st_size
  for gz in (False, True):
    if gz:
      gzpath = tmp_path / 'a.tfrecord.gz'
      gzpath.write_bytes(gzip.compress(path.read_bytes(), 1))
      rng = tfrecord_shards.Range(str(gzpath), 0, None, None)
    else:
      rng = tfrecord_shards.Range(str(path), 0, size, size)
    got = _process(tfrecord_shards._ReadRanges(ReadSettings(max_input_bytes=MIB)), rng)  # pylint: disable=protected-access
    assert [k for k, _ in got] == ['images', elements.ERRORS_TAG, 'images']
    error = got[1][1]
    assert (error.stage, error.error_type) == (elements.READ, 'InputTooLarge')
    assert f'{4 * MIB} bytes' in error.message and f'{MIB} bytes' in error.message
    assert '--max_input_bytes' in error.message and error.source.endswith('#offset=' + str(len(
        tfrecord.encode_record(_example(0)))))


@pytest.mark.parametrize('gz', [False, True])
def test_tar_member_larger_than_the_bound_is_an_error_row(tmp_path, gz):
  path = write_big_tar(tmp_path / ('a.tar' + ('.gz' if gz else '')), 4 * MIB, gz)
  fn = tar_shards._ReadShards(ReadSettings(max_input_bytes=MIB))  # pylint: disable=protected-access
  got = _process(fn, match.FileRef(str(path), 'a', None))
  assert [k for k, _ in got] == ['images', elements.ERRORS_TAG, 'images']
  assert [got[0][1].data, got[2][1].data] == [b'abc', b'xyz']
  error = got[1][1]
  assert (error.id, error.source, error.error_type) == ('k1', f'{path}#member=k1.jpg', 'InputTooLarge')
  assert f'{4 * MIB} bytes' in error.message and '--max_input_bytes' in error.message


def test_tar_member_shorter_than_its_header_is_a_broken_shard(tmp_path):
  path = write_big_tar(tmp_path / 'a.tar', 4 * MIB)
  path.write_bytes(path.read_bytes()[:512 * 3 + 1000])
  fn = tar_shards._ReadShards(ReadSettings())  # pylint: disable=protected-access
  got = _process(fn, match.FileRef(str(path), 'a', None))
  assert [k for k, _ in got] == ['images', outcomes.STOPPED_TAG]  # an error row, and where reading stopped
  assert 'shard unreadable after member k0.jpg' in got[1][1].message


def test_image_file_larger_than_the_bound_is_an_error_row(tmp_path):
  path = tmp_path / 'big.jpg'
  with open(path, 'wb') as f:
    f.truncate(2 * MIB)
  fn = image_files._ReadFile(MIB)  # pylint: disable=protected-access
  for listed, size in ((2 * MIB, f'{2 * MIB} bytes'), (None, 'more than its')):  # from the listing, or unknown
    ((tag, error),) = _process(fn, match.FileRef(str(path), 'big', listed))
    assert (tag, error.stage, error.error_type) == (elements.ERRORS_TAG, elements.READ, 'InputTooLarge')
    assert size in error.message and f'{MIB} bytes (--max_input_bytes)' in error.message
  ((tag, image),) = _process(image_files._ReadFile(), match.FileRef(str(path), 'big', None))  # pylint: disable=protected-access
  assert tag == 'images' and len(image.data) == 2 * MIB


# Whole read stage in its own process: the peak RSS shows nothing large was read into memory.

_SCRIPT = textwrap.dedent('''
    import json, resource, sys
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from transforms import elements
    from transforms.read.plan import plan_inputs
    from transforms.read.readers import ReadImages
    from transforms.read.settings import ReadSettings
    patterns, bound, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    plan = plan_inputs(patterns, settings=ReadSettings(max_input_bytes=bound))
    with beam.Pipeline(options=PipelineOptions(['--direct_num_workers=1'])) as p:
      read = p | ReadImages(plan)
      images = read['images'] | 'I' >> beam.Map(lambda e: ('image', e.ref.source, len(e.data)))
      errors = read[elements.ERRORS_TAG] | 'E' >> beam.Map(lambda e: ('error', e.source, e.error_type))
      _ = ((images, errors) | beam.Flatten() | beam.Map(json.dumps)
           | beam.io.WriteToText(out, shard_name_template=''))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)
''')


def _read_stage(patterns, bound, tmp_path):
  """(rows read, peak RSS in MiB) of the read stage alone, on the DirectRunner in one fresh process."""
  out = tmp_path / f'out-{len(list(tmp_path.iterdir()))}.jsonl'
  done = subprocess.run([sys.executable, '-c', _SCRIPT, json.dumps([str(p) for p in patterns]), str(bound), str(out)],
                        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  rows = sorted(tuple(json.loads(line)) for line in out.read_text().splitlines())
  return rows, int(done.stdout.split()[-1])


def _small_inputs(d: pathlib.Path):
  d.mkdir()
  (d / 'a.jpg').write_bytes(b'x' * 1000)
  write_big_tfrecord(d / 'a.tfrecord', 1000)
  write_big_tar(d / 'a.tar', 1000)
  return d


@pytest.mark.full
def test_read_stage_memory_stays_bounded(tmp_path):
  """Inputs of 64 MiB each with a 1 MiB bound: error rows, and the peak RSS grows less than one input would."""
  big = 64 * MIB
  d = tmp_path / 'big'
  d.mkdir()
  with open(d / 'big.jpg', 'wb') as f:
    f.truncate(big)
  write_big_tfrecord(d / 'big.tfrecord', big)
  gz = d / 'big.tfrecord.gz'
  gz.write_bytes(gzip.compress((d / 'big.tfrecord').read_bytes(), 1))  # inflates to 64 MiB
  write_big_tar(d / 'big.tar', big)
  write_big_tar(d / 'bigz.tar.gz', big, gz=True)
  patterns = [d / 'big.jpg', d / 'big.tfrecord', gz, d / 'big.tar', d / 'bigz.tar.gz']
  rows, peak = _read_stage(patterns, MIB, tmp_path)
  errors = [r for r in rows if r[0] == 'error']
  assert sorted((r[1].split('#')[0], r[2]) for r in errors) == sorted(
      (str(p), 'InputTooLarge') for p in patterns), rows
  assert len(rows) == 1 + 2 * 3 + 2 * 3
  _, baseline = _read_stage([_small_inputs(tmp_path / 'small') / 'a.*'], MIB, tmp_path)
  bound = 40  # MiB over the same job on tiny inputs; any one input read whole would add 64
  print(f'peak RSS {peak} MiB, on tiny inputs {baseline} MiB')
  assert peak - baseline < bound, (peak, baseline)


@pytest.mark.full
def test_default_bound_refuses_a_300_mib_file(tmp_path):
  path = tmp_path / 'huge.jpg'
  with open(path, 'wb') as f:
    f.truncate(300 * MIB)  # sparse: nothing written to disk
  rows, peak = _read_stage([path], MAX_INPUT_BYTES, tmp_path)
  assert rows == [('error', str(path), 'InputTooLarge')]
  _, baseline = _read_stage([_small_inputs(tmp_path / 'small') / 'a.jpg'], MAX_INPUT_BYTES, tmp_path)
  print(f'peak RSS {peak} MiB, on a tiny file {baseline} MiB')
  assert peak - baseline < 40, (peak, baseline)  # reading it would add 300 MiB


# The option.

def test_option_default_and_value(tmp_path):
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  from pipeline import options  # pylint: disable=import-outside-toplevel
  from tests import datagen  # pylint: disable=import-outside-toplevel
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model',
          str(datagen.TFLITE_QUANT)]
  assert options.validate(PipelineOptions(argv)).read_settings.max_input_bytes == MAX_INPUT_BYTES == 256 * MIB
  config = options.validate(PipelineOptions(argv + ['--max_input_bytes', '1024']))
  assert config.read_settings.max_input_bytes == 1024


@pytest.mark.parametrize('value', ['0', '-5'])
def test_option_must_be_positive(tmp_path, capsys, value):
  from pipeline import run  # pylint: disable=import-outside-toplevel
  from tests import datagen  # pylint: disable=import-outside-toplevel
  argv = ['--input', f'{datagen.PHOTOS}/*', '--output', str(tmp_path / 'out'), '--model',
          str(datagen.TFLITE_QUANT), f'--max_input_bytes={value}']
  assert run.main(argv) == 2
  assert f'--max_input_bytes must be positive, not {value}' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


@pytest.mark.full
def test_tar_member_claiming_a_gib_at_the_default_bound(tmp_path):
  path = write_big_tar(tmp_path / 'a.tar', 1 << 30)  # sparse: the header claims 1 GiB, the disk holds zeros
  fn = tar_shards._ReadShards(ReadSettings())  # pylint: disable=protected-access
  got = _process(fn, match.FileRef(str(path), 'a', None))
  assert [k for k, _ in got] == ['images', elements.ERRORS_TAG, 'images']
  assert got[1][1].error_type == 'InputTooLarge' and f'{1 << 30} bytes' in got[1][1].message
