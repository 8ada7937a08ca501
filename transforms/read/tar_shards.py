"""WebDataset tar shards -> EncodedImage; id = the sample's key.

A tar has no index to cut it by, so the unit of parallel work is the shard:
a worker matches the inputs and the shard names (not their bytes) are
grouped by path (each shard read once, match.MatchInputs), which spreads the
shards, and the decoding and inference fused after the read, over all workers. Large jobs have many shards, as img2dataset
writes them.
"""
from typing import Dict, Iterable, List

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import elements
from transforms.read import match, outcomes
from transforms.read.formats import detect, passthrough, webdataset
from transforms.read.settings import ReadSettings


def source(path: str, member: str) -> str:
  return f'{path}#member={member}'


def to_image(path: str, sample: webdataset.Sample, settings: ReadSettings) -> elements.EncodedImage:
  """The sample's image with its passthrough values; raises RecordError locating the sample."""
  ref = elements.ImageRef(sample.key, source(path, next(iter(sample.names.values()))))
  try:
    ext = webdataset.image_extension(sample, settings.image_key)
    ref = ref._replace(source=source(path, sample.names[ext]))
    extra = None
    if settings.columns:
      found = webdataset.sample_values(sample)
      extra = {c.name: passthrough.convert(c, found.get(c.name)) for c in settings.columns}
  except (webdataset.SampleError, passthrough.PassthroughError) as e:
    raise elements.RecordError(ref, e) from e
  return elements.EncodedImage(ref._replace(extra=extra), sample.members[ext])


def sample(path: str, count: int) -> List[Dict[str, passthrough.Values]]:
  """Passthrough values of the shard's first `count` samples (for typing passthrough columns)."""
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return passthrough.first_samples(webdataset.samples(f), webdataset.sample_values, webdataset.SampleError,
                                     count)


class _ReadShards(beam.DoFn):

  def __init__(self, settings: ReadSettings):
    self._settings = settings
    self._read = outcomes.ReadCounter()

  def process(self, file: match.FileRef) -> Iterable:
    last = '(start)'
    try:
      with FileSystems.open(file.path, compression_type='uncompressed') as f:
        for item in webdataset.samples(f):
          self._read.inc()
          last = item.names[next(reversed(item.names))]
          yield outcomes.image_or_error(lambda item=item: to_image(file.path, item, self._settings))
    except Exception as e:  # pylint: disable=broad-except
      # The shard itself failed (gone, truncated, not a tar).
      where = source(file.path, last)
      yield outcomes.rest_of_file_lost(self._read, where, e, f'shard unreadable after member {last}')


class ReadTarShards(beam.PTransform):
  """WebDataset samples from tar shards named by globs or lists."""

  def __init__(self, patterns, settings: ReadSettings):
    super().__init__()
    self._patterns = list(patterns)
    self._settings = settings

  def expand(self, pbegin):
    read = (pbegin
            | 'Match' >> match.MatchInputs(self._patterns, detect.TAR)
            | 'ReadShards' >> beam.ParDo(_ReadShards(self._settings)).with_outputs(elements.ERRORS_TAG,
                                                                                 main='images'))
    return {'images': read.images, elements.ERRORS_TAG: read[elements.ERRORS_TAG]}
