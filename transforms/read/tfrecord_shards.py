"""TFRecord shards of tf.train.Example -> EncodedImage, read in byte ranges spread over workers.

Split strategy. Beam's ReadFromTFRecord reads each file whole on one worker,
so one large file would not parallelize. Here a worker matches the inputs and
cuts every uncompressed file into byte ranges (tfrecord.split_ranges: about 16
per file, 1 to 64 MiB each), each a read unit, the unit of commit too
(units.py: `PATH#bytes=START-END`); the small (path, start, end) descriptors,
never image bytes, then go through a shuffle. The shuffle is a fusion break, so
the runner hands the reading stage, and the decode and inference fused after
it, to all its workers, each taking a share of the ranges (the local runner
splits the shuffled descriptors evenly across its worker processes; Dataflow
and Flink distribute them likewise). Each range yields the records that begin
in it; tfrecord.RecordReader explains how a range finds its first record and
why no record is read twice or lost, even around corrupt bytes, which become
error rows that locate them (`path#offset=N`). GZIP files cannot be cut: each
is one range, so many compressed shards still read in parallel.

On gs://, a range's bytes are read ahead in large range requests through the
read window (read_ahead.py), while earlier units are inferred; GZIP files are
read as one stream, through Beam's FileSystems.

Flaky storage. A range whose read fails with a storage error is reopened at
the byte after the last record it yielded (GZIP files: reopened at the start,
skipping the records already yielded), with backoff (retry.resilient); if
storage keeps failing, what was not read, `PATH#bytes=START-END` (`START-`
for GZIP files), goes on the unread output. A record whose header declares
more than --max_input_bytes is an error row, skipped without being read.
"""
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import elements, progress
from transforms.read import match, outcomes, read_ahead, retry, storage
from transforms.read.formats import detect, passthrough, tf_example, tfrecord
from transforms.read.settings import InputTooLarge, ReadSettings
from transforms.read.window import Window


class Range(NamedTuple):
  path: str
  start: int
  end: Optional[int]  # None: to the end (compressed files)
  size: Optional[int]  # None for compressed files (their uncompressed size is unknown)


def is_gzip(path: str, compression: str) -> bool:
  return compression == 'gzip' or (compression == 'auto' and path.lower().endswith('.gz'))


def source(path: str, offset: int) -> str:
  return f'{path}#offset={offset}'


def open_reader(path: str, gzip: bool, size: Optional[int], max_record_bytes: Optional[int] = None, f=None):
  """(the open file, or f, and its RecordReader); the caller closes the file."""
  if f is None:
    f = FileSystems.open(path, compression_type=CompressionTypes.GZIP if gzip else CompressionTypes.UNCOMPRESSED)
  return f, tfrecord.RecordReader(f, None if gzip else size, max_record_bytes)


def unit_name(rng: 'Range') -> str:
  return f'{rng.path}#bytes={rng.start}-{"" if rng.end is None else rng.end}'


def unread(rng: 'Range', offset: int) -> str:
  """Where a range's read stopped for good: PATH#bytes=OFFSET-END (OFFSET- for compressed files)."""
  return f'{rng.path}#bytes={offset}-{"" if rng.end is None else rng.end}'


class _Position(NamedTuple):
  offset: int  # where the next item begins
  done: int  # items yielded so far


def _item_end(item) -> int:
  if isinstance(item, tfrecord.Record):
    return item.offset + len(item.data) + tfrecord.OVERHEAD
  return item.end


def read_range(rng: 'Range', max_record_bytes: Optional[int], position: _Position, f=None) -> Iterator:
  """(item, position after it) for the range's items from position on (one attempt; retry.resilient's read);
  f: the file to read it from (the range's read-ahead), else it is opened."""
  gzip = rng.size is None
  f, reader = open_reader(rng.path, gzip, rng.size, max_record_bytes, f)
  with f:
    if gzip:  # a stream: read again from the start, skipping what was yielded
      items = reader.read(0, None)
      for _ in range(position.done):
        next(items, None)
    else:
      items = reader.read(position.offset, rng.end, aligned=position.offset != rng.start)
    done = position.done
    for item in items:
      done += 1
      yield item, _Position(_item_end(item), done)


def to_image(path: str, record: tfrecord.Record, settings: ReadSettings,
             nulled: Optional[Dict[str, int]] = None) -> elements.EncodedImage:
  """The record's image with its id and passthrough values (one of another type null, counted in `nulled`);
  raises RecordError locating the record."""
  where = source(path, record.offset)
  ref = elements.ImageRef(where, where)
  try:
    found = tf_example.features(record.data)
    ref = ref._replace(id=tf_example.record_id(found, settings.id_key or tf_example.ID_KEY) or where)
    image = tf_example.image_bytes(found, settings.image_key or tf_example.IMAGE_KEY)
    extra = passthrough.values(settings.columns, found, {} if nulled is None else nulled)
  except (tf_example.ExampleError, passthrough.PassthroughError) as e:
    raise elements.RecordError(ref, e) from e
  return elements.EncodedImage(ref._replace(extra=extra or None), image)


def sample(path: str, settings: ReadSettings, count: int) -> List[Dict[str, passthrough.Values]]:
  """The features of the file's first `count` readable Examples (for typing passthrough columns)."""
  gzip = is_gzip(path, settings.compression)
  size = None if gzip else FileSystems.match([path])[0].metadata_list[0].size_in_bytes
  f, reader = open_reader(path, gzip, size, settings.max_input_bytes)
  with f:
    found = (item.data for item in reader.read() if isinstance(item, tfrecord.Record))
    return passthrough.first_samples(found, tf_example.features, tf_example.ExampleError, count)


class PlanRanges(beam.DoFn):
  """FileRef -> (unit name, Range) per range; a file whose size cannot be found is one unit holding its error."""

  def __init__(self, compression: str, split_bytes: Optional[int] = None):
    self._compression = compression
    self._split_bytes = split_bytes

  def process(self, file: match.FileRef) -> Iterator:
    if is_gzip(file.path, self._compression):
      rng = Range(file.path, 0, None, None)
      yield unit_name(rng), rng
      return
    size = file.size
    if size is None:
      try:
        size = FileSystems.match([file.path])[0].metadata_list[0].size_in_bytes
      except Exception as e:  # pylint: disable=broad-except
        ref = elements.ImageRef(file.path, file.path)
        yield file.path, elements.error_for(ref, elements.READ, e)
        return
    limits = {} if self._split_bytes is None else {'min_bytes': self._split_bytes, 'max_bytes': self._split_bytes}
    for start, end in tfrecord.split_ranges(size, **limits):
      rng = Range(file.path, start, end, size)
      yield unit_name(rng), rng


class _Shown:
  """A range's records and the bytes they span, for the launcher's estimate of the shards' records
  (transforms/progress.py); a GZIP file's (its compressed size) only once read whole."""

  def __init__(self, rng: Range):
    self._rng, self._at, self._records = rng, rng.start, 0

  def record(self, end: int) -> None:
    if self._rng.end is None:
      self._records += 1
      return
    end = min(end, self._rng.end)
    progress.read_tfrecord(1, max(0, end - self._at))
    self._at = max(self._at, end)

  def done(self) -> None:
    if self._rng.end is not None:
      progress.read_tfrecord(0, max(0, self._rng.end - self._at))
      return
    try:
      size = FileSystems.match([self._rng.path])[0].metadata_list[0].size_in_bytes
    except Exception:  # pylint: disable=broad-except  # only the estimate misses it
      return
    progress.read_tfrecord(self._records, size)


class _ReadRanges(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._settings = settings
    self._store = storage.Storage.of(settings)
    self._read = outcomes.ReadCounter()

  def prepare(self, rng: Range, window: Window) -> Optional[read_ahead.PrefetchedFile]:
    """The range's bytes, and a little past its end for its last record, in the window on storage with latency
    (read_ahead.py); None: read when processed."""
    end = None if rng.end is None else min(rng.end + read_ahead.SLACK_BYTES, rng.size)
    return read_ahead.prefetched(self._store, window, rng.path, rng.start, end)

  def process(self, rng: Range, prepared: Optional[read_ahead.PrefetchedFile] = None) -> Iterable:
    position = rng.start
    bound = self._settings.max_input_bytes
    first = [prepared] if prepared is not None else []  # a retry reads directly from where it stopped

    def attempt(at):
      f = first.pop() if first else None
      if f is None and rng.size is not None and storage.is_gcs(rng.path):
        f = read_ahead.open_direct(self._store, rng.path)
      return read_range(rng, bound, at, f)
    items = retry.resilient(attempt, _Position(rng.start, 0), lambda at: unread(rng, at.offset))
    shown = _Shown(rng)
    nulled: Dict[str, int] = {}
    try:
      for item in outcomes.counted(items, self._read):
        if isinstance(item, beam.pvalue.TaggedOutput):  # the rest of the range, unreadable
          yield item
          continue
        position = _item_end(item)
        shown.record(position)
        if isinstance(item, tfrecord.BadRange):
          where = source(rng.path, item.start)
          error = elements.ErrorRecord(where, where, elements.READ, 'CorruptRecord',
                                      f'bytes {item.start}-{item.end} skipped: {item.reason}')
          yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, error)
        elif isinstance(item, tfrecord.TooLarge):
          where = source(rng.path, item.start)
          e = InputTooLarge(f'the record at byte {item.start}', item.length, bound)
          yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG,
                                         elements.ErrorRecord(where, where, elements.READ, 'InputTooLarge', str(e)))
        else:
          yield outcomes.image_or_error(lambda item=item: to_image(rng.path, item, self._settings, nulled))
    except Exception as e:  # pylint: disable=broad-except
      # The data itself failed (bad GZIP, ...), or storage refused for good (gone, no permission).
      where = source(rng.path, position)
      yield outcomes.rest_of_file_lost(self._read, where, e, f'reading stopped at byte {position}')
    counts: Dict[str, int] = {}
    outcomes.noted(counts, outcomes.PASSTHROUGH_NULLS, nulled)
    yield from outcomes.counts_output(counts)
    shown.done()


def reader(settings: ReadSettings) -> beam.DoFn:
  return _ReadRanges(settings)


def ReadTFRecords(patterns, settings: ReadSettings, split_bytes: Optional[int] = None):  # pylint: disable=invalid-name
  """tf.Example records from TFRecord files named by globs or lists; split_bytes: a fixed range size instead of
  the automatic one (tests)."""
  return outcomes.MatchAndRead(patterns, detect.TFRECORD, PlanRanges(settings.compression, split_bytes),
                               reader(settings))
