"""TFRecord shards of tf.train.Example -> EncodedImage, read in byte ranges spread over workers.

Split strategy. Beam's ReadFromTFRecord reads each file whole on one worker,
so one large file would not parallelize. Here a worker matches the inputs and
cuts every uncompressed file into byte ranges (tfrecord.split_ranges: about 16
per file, 1 to 64 MiB each); the small (path, start, end) descriptors, never
image bytes, then go through a Reshuffle. The shuffle is a fusion break, so
the runner hands the reading stage, and the decode and inference fused after
it, to all its workers, each taking a share of the ranges (the local runner
splits the shuffled descriptors evenly across its worker processes; Dataflow
and Flink distribute them likewise). Each range yields the records that begin
in it; tfrecord.RecordReader explains how a range finds its first record and
why no record is read twice or lost, even around corrupt bytes, which become
error rows that locate them (`path#offset=N`). GZIP files cannot be cut: each
is one range, so many compressed shards still read in parallel.
"""
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import elements
from transforms.read import match, outcomes
from transforms.read.formats import detect, passthrough, tf_example, tfrecord
from transforms.read.settings import ReadSettings


class Range(NamedTuple):
  path: str
  start: int
  end: Optional[int]  # None: to the end (compressed files)
  size: Optional[int]  # None for compressed files (their uncompressed size is unknown)


def is_gzip(path: str, compression: str) -> bool:
  return compression == 'gzip' or (compression == 'auto' and path.lower().endswith('.gz'))


def source(path: str, offset: int) -> str:
  return f'{path}#offset={offset}'


def open_reader(path: str, gzip: bool, size: Optional[int]) -> tfrecord.RecordReader:
  f = FileSystems.open(path, compression_type=CompressionTypes.GZIP if gzip else CompressionTypes.UNCOMPRESSED)
  return tfrecord.RecordReader(f, None if gzip else size)


def to_image(path: str, record: tfrecord.Record, settings: ReadSettings) -> elements.EncodedImage:
  """The record's image with its id and passthrough values; raises RecordError locating the record."""
  where = source(path, record.offset)
  ref = elements.ImageRef(where, where)
  try:
    found = tf_example.features(record.data)
    ref = ref._replace(id=tf_example.record_id(found, settings.id_key or tf_example.ID_KEY) or where)
    image = tf_example.image_bytes(found, settings.image_key or tf_example.IMAGE_KEY)
    extra = {c.name: passthrough.convert(c, found.get(c.name)) for c in settings.columns}
  except (tf_example.ExampleError, passthrough.PassthroughError) as e:
    raise elements.RecordError(ref, e) from e
  return elements.EncodedImage(ref._replace(extra=extra or None), image)


def sample(path: str, settings: ReadSettings, count: int) -> List[Dict[str, passthrough.Values]]:
  """The features of the file's first `count` readable Examples (for typing passthrough columns)."""
  gzip = is_gzip(path, settings.compression)
  size = None if gzip else FileSystems.match([path])[0].metadata_list[0].size_in_bytes
  found = (item.data for item in open_reader(path, gzip, size).read() if isinstance(item, tfrecord.Record))
  return passthrough.first_samples(found, tf_example.features, tf_example.ExampleError, count)


class _PlanRanges(beam.DoFn):

  def __init__(self, compression: str, split_bytes: Optional[int]):
    self._compression = compression
    self._split_bytes = split_bytes

  def process(self, file: match.FileRef) -> Iterator:
    if is_gzip(file.path, self._compression):
      yield Range(file.path, 0, None, None)
      return
    size = file.size
    if size is None:
      try:
        size = FileSystems.match([file.path])[0].metadata_list[0].size_in_bytes
      except Exception as e:  # pylint: disable=broad-except
        ref = elements.ImageRef(file.path, file.path)
        yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, elements.error_for(ref, elements.READ, e))
        return
    limits = {} if self._split_bytes is None else {'min_bytes': self._split_bytes, 'max_bytes': self._split_bytes}
    for start, end in tfrecord.split_ranges(size, **limits):
      yield Range(file.path, start, end, size)


class _ReadRanges(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._settings = settings
    self._read = outcomes.ReadCounter()

  def process(self, rng: Range) -> Iterable:
    position = rng.start
    try:
      reader = open_reader(rng.path, rng.size is None, rng.size)
      for item in reader.read(rng.start, rng.end):
        self._read.inc()
        if isinstance(item, tfrecord.BadRange):
          position = item.end
          where = source(rng.path, item.start)
          error = elements.ErrorRecord(where, where, elements.READ, 'CorruptRecord',
                                      f'bytes {item.start}-{item.end} skipped: {item.reason}')
          yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, error)
          continue
        position = item.offset + len(item.data) + tfrecord.OVERHEAD
        yield outcomes.image_or_error(lambda item=item: to_image(rng.path, item, self._settings))
    except Exception as e:  # pylint: disable=broad-except
      # The file itself failed (gone, unreadable, bad GZIP).
      where = source(rng.path, position)
      yield outcomes.rest_of_file_lost(self._read, where, e, f'reading stopped at byte {position}')


class ReadTFRecords(beam.PTransform):
  """tf.Example records from TFRecord files named by globs or lists."""

  def __init__(self, patterns, settings: ReadSettings, split_bytes: Optional[int] = None):
    super().__init__()
    self._patterns = list(patterns)
    self._settings = settings
    self._split_bytes = split_bytes  # fixed range size instead of the automatic one (tests)

  def expand(self, pbegin):
    plan = _PlanRanges(self._settings.compression, self._split_bytes)
    ranges = (pbegin
              | 'Match' >> match.MatchInputs(self._patterns, detect.TFRECORD)
              | 'PlanRanges' >> beam.ParDo(plan).with_outputs(elements.ERRORS_TAG, main='ranges'))
    read = (ranges.ranges
            | 'Spread' >> beam.Reshuffle()
            | 'ReadRanges' >> beam.ParDo(_ReadRanges(self._settings)).with_outputs(elements.ERRORS_TAG,
                                                                                 main='images'))
    errors = (ranges[elements.ERRORS_TAG], read[elements.ERRORS_TAG]) | 'Errors' >> beam.Flatten()
    return {'images': read.images, elements.ERRORS_TAG: errors}
