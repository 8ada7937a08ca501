"""WebDataset tar shards -> EncodedImage; id = the sample's key.

A tar has no index to cut it by, so the unit of parallel work is the shard:
a worker expands the inputs and the shard names (not their bytes) are
grouped by path (each shard read once), which spreads the shards, and the decoding and inference fused
after the read, over all workers. Large jobs have many shards, as img2dataset
writes them.
"""
from typing import Dict, Iterable, List

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import inputs, passthrough, records, webdataset

EXTENSIONS = ('.tar', '.tar.gz', '.tgz')


def source(path: str, member: str) -> str:
  return f'{path}#member={member}'


def to_image(path: str, sample: webdataset.Sample, settings: inputs.ReadSettings) -> records.EncodedImage:
  """The sample's image with its passthrough values; raises RecordError locating the sample."""
  ref = records.ImageRef(sample.key, source(path, next(iter(sample.names.values()))))
  try:
    ext = webdataset.image_extension(sample, settings.image_key)
    ref = ref._replace(source=source(path, sample.names[ext]))
    extra = None
    if settings.columns:
      found = webdataset.sample_values(sample)
      extra = {c.name: passthrough.convert(c, found.get(c.name)) for c in settings.columns}
  except (webdataset.SampleError, passthrough.PassthroughError) as e:
    raise records.RecordError(ref, e) from e
  return records.EncodedImage(ref._replace(extra=extra), sample.members[ext])


def sample(path: str, count: int) -> List[Dict[str, passthrough.Values]]:
  """Passthrough values of the shard's first `count` samples (for typing passthrough columns)."""
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return passthrough.first_samples(webdataset.samples(f), webdataset.sample_values, webdataset.SampleError,
                                     count)


class _ReadShards(beam.DoFn):

  def __init__(self, settings: inputs.ReadSettings):
    self._settings = settings
    self._read = inputs.ReadCounter()

  def process(self, file: inputs.FileRef) -> Iterable:
    last = '(start)'
    try:
      with FileSystems.open(file.path, compression_type='uncompressed') as f:
        for item in webdataset.samples(f):
          self._read.inc()
          last = item.names[next(reversed(item.names))]
          yield inputs.image_or_error(lambda item=item: to_image(file.path, item, self._settings))
    except Exception as e:  # pylint: disable=broad-except
      # The shard itself failed (gone, truncated, not a tar).
      where = source(file.path, last)
      yield inputs.rest_of_file_lost(self._read, where, e, f'shard unreadable after member {last}')


class ReadTarShards(beam.PTransform):
  """WebDataset samples from tar shards named by globs or lists."""

  def __init__(self, patterns, settings: inputs.ReadSettings):
    super().__init__()
    self._patterns = list(patterns)
    self._settings = settings

  def expand(self, pbegin):
    read = (pbegin
            | 'Patterns' >> beam.Create(self._patterns)
            | 'Expand' >> beam.ParDo(inputs.ExpandInputs())
            | 'EachFileOnce' >> inputs.EachFileOnce()
            | 'ReadShards' >> beam.ParDo(_ReadShards(self._settings)).with_outputs(records.ERRORS_TAG,
                                                                                 main='images'))
    return {'images': read.images, records.ERRORS_TAG: read[records.ERRORS_TAG]}
