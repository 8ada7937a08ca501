"""WebDataset tar shards -> EncodedImage; id = the sample's key.

A tar has no index to cut it by, so the unit of parallel work, and of commit
(units.py), is the shard: a worker matches the inputs and the shard names
(not their bytes) become one unit each, which spreads the shards, and the
decoding and inference fused after the read, over all workers. Large jobs have
many shards, as img2dataset writes them (10,000 samples each): a crash costs
at most the shards being read.

On gs://, a shard whose size the listing gave is read ahead in large range
requests through the read window (read_ahead.py), while earlier units are
inferred.

Flaky storage. A shard whose read fails with a storage error is reopened and
the samples already yielded skipped, with backoff (retry.resilient); if
storage keeps failing, `PATH#after_member=NAME` (or `PATH` when nothing was
read) goes on the unread output. A member larger than --max_input_bytes makes
its sample an error row; its data is skipped, never read into memory.

Progress. The launcher counts the shards by their bytes, not their samples
(transforms/read/totals.py), so the reader reports the samples it reads and
the shard bytes it has consumed for them (_Shown), from
which the launcher estimates those shards' samples. The bytes are the raw
file's, as pulled from storage (for a compressed shard the members' offsets
are in the decompressed stream, not in the bytes the listing sizes).
"""
from typing import BinaryIO, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import elements, progress
from transforms.read import match, outcomes, read_ahead, retry, storage
from transforms.read.formats import detect, passthrough, webdataset
from transforms.read.settings import InputTooLarge, ReadSettings
from transforms.read.window import Window


def source(path: str, member: str) -> str:
  return f'{path}#member={member}'


def to_image(path: str, sample: webdataset.Sample, settings: ReadSettings,
             nulled: Optional[Dict[str, int]] = None) -> elements.EncodedImage:
  """The sample's image with its passthrough values (one of another type null, counted in `nulled`); raises
  RecordError locating the sample."""
  ref = elements.ImageRef(sample.key, source(path, next(iter(sample.names.values()))))
  try:
    for ext, size in sample.too_large.items():
      ref = ref._replace(source=source(path, sample.names[ext]))
      raise InputTooLarge(f'member {sample.names[ext]}', size, settings.max_input_bytes)
    ext = webdataset.image_extension(sample, settings.image_key)
    ref = ref._replace(source=source(path, sample.names[ext]))
    extra = None
    if settings.columns:
      found = webdataset.sample_values(sample)
      extra = passthrough.values(settings.columns, found, {} if nulled is None else nulled)
  except (webdataset.SampleError, passthrough.PassthroughError, InputTooLarge) as e:
    raise elements.RecordError(ref, e) from e
  return elements.EncodedImage(ref._replace(extra=extra), sample.members[ext])


def _image_member(sample: webdataset.Sample, settings: ReadSettings) -> Optional[str]:
  try:
    return webdataset.image_extension(sample, settings.image_key)
  except webdataset.SampleError:  # no image: an error row says so
    return None


def sample(path: str, count: int, max_member_bytes: Optional[int] = None) -> List[Dict[str, passthrough.Values]]:
  """Passthrough values of the shard's first `count` samples (for typing passthrough columns)."""
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return passthrough.first_samples(webdataset.samples(f, max_member_bytes), webdataset.sample_values,
                                     webdataset.SampleError, count)


def unread(path: str, last: Optional[str]) -> str:
  """What of a shard was not read: PATH#after_member=NAME, or PATH when nothing was."""
  return path if last is None else f'{path}#after_member={last}'


class _Pulled:
  """A shard's file as tarfile reads it (read() only), telling `seen` how many bytes it has pulled."""

  def __init__(self, f: BinaryIO, seen: Optional['_Shown']):
    self._f, self._seen, self._at = f, seen, 0

  def read(self, size: int = -1) -> bytes:
    data = self._f.read(size)
    if self._seen is not None:
      self._seen.pulled(self._at + len(data))
    self._at += len(data)
    return data

  def close(self) -> None:
    pass  # the caller's `with` closes the file


def read_shard(f, max_member_bytes: Optional[int], position: Tuple[int, Optional[str]],
               seen: Optional['_Shown'] = None) -> Iterator:
  """(sample, (samples done, its last member)) of the open shard f from its start, skipping the first
  position[0] samples; `seen` is told what is pulled from the file. Closes f."""
  done = position[0]
  with f:
    for i, item in enumerate(webdataset.samples(_Pulled(f, seen), max_member_bytes)):
      if i >= done:
        yield item, (i + 1, item.names[next(reversed(item.names))])


class _Shown:
  """A shard's samples and the bytes consumed for them, reported to the launcher's estimate
  (transforms/progress.py); the rest of the file once it ends."""

  def __init__(self, file: match.FileRef):
    self._file, self._at, self._reported = file, 0, 0

  def pulled(self, at: int) -> None:
    self._at = max(self._at, at)  # a reopened shard (retry) is read again from its start

  def sample(self) -> None:
    progress.read_tar(1, self._at - self._reported)
    self._reported = self._at

  def done(self) -> None:
    size = self._file.size
    if size is None:
      try:
        size = FileSystems.match([self._file.path])[0].metadata_list[0].size_in_bytes
      except Exception:  # pylint: disable=broad-except  # only the estimate misses it
        return
    if size > self._reported:
      progress.read_tar(0, size - self._reported)
      self._reported = size


class _ReadShards(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._settings = settings
    self._store = storage.Storage.of(settings)
    self._read = outcomes.ReadCounter()

  def prepare(self, file: match.FileRef, window: Window) -> Optional[read_ahead.PrefetchedFile]:
    """The shard's bytes in the window, on storage with latency (read_ahead.py); None: read when processed."""
    return read_ahead.prefetched(self._store, window, file.path, 0, file.size)

  def process(self, file: match.FileRef, prepared: Optional[read_ahead.PrefetchedFile] = None) -> Iterable:
    last = '(start)'
    shown = _Shown(file)
    first = [prepared] if prepared is not None else []  # a retry reads directly from the start

    def attempt(at):
      f = first.pop() if first else read_ahead.open_direct(self._store, file.path)
      return read_shard(f, self._settings.max_input_bytes, at, shown)
    items = retry.resilient(attempt, (0, None), lambda at: unread(file.path, at[1]))
    unused: Dict[str, int] = {}
    nulled: Dict[str, int] = {}
    try:
      for item in outcomes.counted(items, self._read):
        if isinstance(item, beam.pvalue.TaggedOutput):  # the rest of the shard, unreadable
          yield item
          continue
        last = item.names[next(reversed(item.names))]
        shown.sample()
        for ext, n in webdataset.unused_members(item, _image_member(item, self._settings),
                                                self._settings.columns).items():
          unused[ext] = unused.get(ext, 0) + n
        yield outcomes.image_or_error(lambda item=item: to_image(file.path, item, self._settings, nulled))
    except Exception as e:  # pylint: disable=broad-except
      # The shard itself failed (gone, truncated, not a tar).
      where = source(file.path, last)
      shown.sample()  # its error row is one record
      yield outcomes.rest_of_file_lost(self._read, where, e, f'shard unreadable after member {last}')
    counts: Dict[str, int] = {}
    outcomes.noted(counts, outcomes.UNUSED_MEMBERS, unused)
    outcomes.noted(counts, outcomes.PASSTHROUGH_NULLS, nulled)
    yield from outcomes.counts_output(counts)
    shown.done()


def planner(file: match.FileRef):
  """FileRef -> [(its unit, itself)]: a shard is a unit."""
  return [(file.path, file)]


def reader(settings: ReadSettings) -> beam.DoFn:
  return _ReadShards(settings)


def ReadTarShards(patterns: Sequence[str], settings: ReadSettings) -> beam.PTransform:  # pylint: disable=invalid-name
  """WebDataset samples from tar shards named by globs, folders or lists."""
  return outcomes.MatchAndRead(patterns, detect.TAR, planner, reader(settings))
