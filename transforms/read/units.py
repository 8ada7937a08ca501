"""Read units: the unit of reading is the unit of commit, so that a resumed job skips whole units unopened.

A unit is what one reader call reads whole, named from the input alone so that
a resumed run finds the same names:
  - a TFRecord byte range, `PATH#bytes=START-END` (`PATH#bytes=0-` for a GZIP
    file, which cannot be cut; tfrecord_shards.py cuts files into ranges);
  - a tar shard, `PATH` (a tar has no index to cut it by);
  - a run of image files in listing order, `images@FIRST_PATH`, cut where the
    paths say (image_units.py, about --files_per_unit files).
Its fingerprint (the sizes, and for a group its files and ids) says whether a
unit committed earlier is still what the input holds; one that changed is read
again.

Image units are cut on the worker that lists their files, and read there; a
shard's planned items are keyed by a digest of their unit's name and grouped,
which also keeps one of a file named by two inputs. A unit committed by an
earlier run is skipped by its key (transforms/output/resume.py). ReadUnits reads each unit in
one call and gives its records, then a UnitEnd with their count, on one output,
down one fused line (decode, infer and format pass what is not theirs through:
no Flatten, which the local runner materializes, and no shuffle), so all rows of
a unit reach one writer in the bundle that read it (transforms/output/write_units.py).
"""
import collections
import hashlib
from typing import Deque, Dict, Iterable, NamedTuple, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from transforms import elements
from transforms.read import list_inputs, match, outcomes, retry
from transforms.read.formats.detect import IMAGES
from transforms.read.settings import READ_BYTES_IN_FLIGHT, READS_IN_FLIGHT
from transforms.read.window import Window


class Unit(NamedTuple):
  name: str
  fmt: str
  items: Tuple  # FileRefs (an image group, a tar shard), one TFRecord range, or an ErrorRecord found planning it
  fingerprint: str


def unit_key(name: str) -> str:
  """The unit's key in joins and its marker's file name: names are paths, too long and full of '/'."""
  return hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]  # names may not be UTF-8


def _item_order(item) -> tuple:
  return tuple(str(v) for v in item)


def to_unit(name: str, fmt: str, items: Iterable) -> Unit:
  """One unit from its planned items, each file once (match.once), in a fixed order."""
  refs: Dict[str, list] = {}
  others = set()
  for item in items:
    if isinstance(item, match.FileRef):
      refs.setdefault(item.path, []).append(item)
    else:
      others.add(item)
  kept = sorted([match.once(path, named) for path, named in refs.items()] + sorted(others, key=_item_order),
                key=_item_order)
  fingerprint = hashlib.sha256(repr([_item_order(item) for item in kept]).encode('utf-8', 'surrogateescape')
                               ).hexdigest()[:32]
  return Unit(name, fmt, tuple(kept), fingerprint)


class PlanUnits(beam.PTransform):
  """Inputs of one format -> (its Units, the files its listing skipped), listed in shards side by side
  (list_inputs.ListInputs).

  `planner`, for image files: a shard's FileRefs -> its Units (image_units.py), on the worker that lists them;
  for shards: FileRef -> (unit name, item) pairs (a DoFn or a function), grouped by unit (the grouping keeps
  one of a file named by two inputs), then spread over the workers.
  """

  def __init__(self, patterns: Sequence[str], fmt: str, planner, anonymous: bool = False, every: int = 1):
    super().__init__()
    self._patterns = list(patterns)
    self._fmt = fmt
    self._planner = planner
    self._anonymous = anonymous
    self._every = every  # files per listing shard of a small input (list_inputs.ListInputs)

  def expand(self, pbegin):
    fmt = self._fmt
    if fmt == IMAGES:
      return pbegin | 'List' >> list_inputs.ListInputs(self._patterns, fmt, self._anonymous, self._planner, self._every)
    step = (beam.ParDo(self._planner) if isinstance(self._planner, beam.DoFn) else beam.FlatMap(self._planner))
    listed, skipped = pbegin | 'List' >> list_inputs.ListInputs(self._patterns, fmt, self._anonymous)
    return (listed
            | 'Items' >> step
            | 'ByUnit' >> beam.MapTuple(lambda name, item: (unit_key(name), (name, fmt, item)))
            | 'GroupUnits' >> beam.GroupByKey()
            | 'Units' >> beam.MapTuple(lambda _, planned: grouped_unit(planned))
            | 'Spread' >> beam.Reshuffle()), skipped


def grouped_unit(planned: Iterable[tuple]) -> Unit:
  """The unit of a key's planned (name, format, item) values."""
  planned = list(planned)
  name, fmt, _ = planned[0]
  return to_unit(name, fmt, (item for _, _, item in planned))


def _with_unit(value, unit: str):
  if isinstance(value, elements.EncodedImage):
    return value._replace(ref=value.ref._replace(unit=unit))
  return value._replace(unit=unit)  # an ErrorRecord


class _Queued:
  """A unit taken in, with what the window was given of its items so far (readers' prepare())."""
  __slots__ = ('unit', 'prepared', 'next')

  def __init__(self, unit: Unit):
    self.unit, self.prepared, self.next = unit, [], 0


class ReadUnits(beam.DoFn):
  """Unit -> its records (EncodedImage, or ErrorRecord for a read error), then its UnitEnd, on one output.

  `readers`: per format, the DoFn whose process(item, prepared) reads one item (a file, a shard, a range) and
  gives images, errors and unread locations on its tagged outputs, as every reader does; its prepare(item,
  window) puts the item's reads in the read window first (window.py). Units are taken in while the window has
  room, so that the reads of the units after the one being emitted are in flight while the model runs on it;
  each unit's records still come out whole and in order, a unit after the other. Those left at the bundle's end
  come out in finish_bundle. With `reads` 1 each unit is read when it arrives, one read at a time.
  """

  def __init__(self, readers: Dict[str, beam.DoFn], reads: int = READS_IN_FLIGHT,
               max_bytes: int = READ_BYTES_IN_FLIGHT):
    self._readers = readers
    self._reads, self._max_bytes = reads, max_bytes
    self._window: Optional[Window] = None
    self._queued: Deque[_Queued] = collections.deque()

  def setup(self):
    for reader in self._readers.values():
      reader.setup()

  def start_bundle(self):
    if self._window is not None:  # a bundle that failed: its reads are abandoned
      self._window.close(wait=False)
    self._window = Window(self._reads, self._max_bytes)
    self._queued.clear()

  def process(self, unit: Unit) -> Iterable:
    self._queued.append(_Queued(unit))
    self._fill()
    while self._queued and (self._reads <= 1 or self._window.full()):
      yield from self._emit(self._queued.popleft())

  def finish_bundle(self):
    while self._queued:
      for out in self._emit(self._queued.popleft()):
        yield WindowedValue(out, MIN_TIMESTAMP, [GlobalWindow()])
    self._window.close()
    self._window = None

  def _fill(self) -> None:
    """Gives the window the items of the queued units, in order, until it is full."""
    if self._reads <= 1:
      return
    for queued in self._queued:
      items = queued.unit.items
      while queued.next < len(items):
        if self._window.full():
          return
        queued.prepared.append(self._prepare(queued.unit.fmt, items[queued.next]))
        queued.next += 1

  def _prepare(self, fmt: str, item):
    if isinstance(item, elements.ErrorRecord):
      return None
    return self._readers[fmt].prepare(item, self._window)

  def _emit(self, queued: _Queued) -> Iterable:
    unit = queued.unit
    records, unread, stopped, counts = 0, [], [], {}
    for i, item in enumerate(unit.items):
      if i < queued.next:
        prepared, queued.prepared[i] = queued.prepared[i], None  # taken: the unit no longer holds it
      else:
        prepared, queued.next = None, i + 1  # read now, without the window
      outputs = [item] if isinstance(item, elements.ErrorRecord) else self._readers[unit.fmt].process(item, prepared)
      before = records + len(unread)
      for out in outputs:
        tagged = isinstance(out, beam.pvalue.TaggedOutput)
        if tagged and out.tag == retry.UNREAD_TAG:
          unread.append(out.value)
          continue
        if tagged and out.tag == outcomes.COUNTS_TAG:
          outcomes.noted(counts, '', dict(out.value))
          continue
        if tagged and out.tag == outcomes.STOPPED_TAG:  # an error row, and the place reading broke off
          stopped.append(out.value.source)
        records += 1
        yield _with_unit(out.value if tagged else out, unit.name)
      if unit.fmt == IMAGES and records + len(unread) == before:  # a planned file is a record, whatever its reader
        records += 1
        yield _with_unit(elements.ErrorRecord(item.id, item.path, elements.READ, 'NothingRead',
                                              'the reader gave nothing for this file'), unit.name)
      self._fill()
    yield elements.UnitEnd(unit.name, records, tuple(unread), unit.fingerprint, tuple(stopped),
                           tuple(sorted(counts.items())))

  def teardown(self):
    if self._window is not None:
      self._window.close(wait=False)
    for reader in self._readers.values():
      reader.teardown()


def by_kind(records) -> dict:
  """ReadUnits' single output split as readers' outputs are: {'images', 'errors', 'unread'} (for tests and
  tools that want them apart)."""
  return {
      'images': records | 'Images' >> beam.Filter(lambda x: isinstance(x, elements.EncodedImage)),
      elements.ERRORS_TAG: records | 'Errors' >> beam.Filter(lambda x: isinstance(x, elements.ErrorRecord)),
      outcomes.STOPPED_TAG: records | 'Stopped' >> beam.FlatMap(
          lambda x: x.stopped if isinstance(x, elements.UnitEnd) else ()),
      retry.UNREAD_TAG: records | 'Unread' >> beam.FlatMap(
          lambda x: x.unread if isinstance(x, elements.UnitEnd) else ()),
  }


def read_all(planned, read: ReadUnits) -> beam.PCollection:
  """Planned units (PlanUnits) -> every unit read by `read`, without resume (readers.ReadImages; tests)."""
  return planned | 'ReadUnits' >> beam.ParDo(read)
