"""Image files by glob or list -> EncodedImage(ref, bytes), plus read errors.

Inputs are expanded on a worker, then the file names (not their bytes) are
grouped by path (inputs.EachFileOnce), so that each file is read once and
reading and all later fused stages spread over every worker instead of
running where the single pattern element landed.
"""
from typing import Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import inputs, records


class _ReadFile(beam.DoFn):

  def __init__(self):
    self._read = inputs.ReadCounter()

  def process(self, file: inputs.FileRef) -> Iterable:
    self._read.inc()
    ref = records.ImageRef(file.id, file.path)
    try:
      with FileSystems.open(file.path, compression_type='uncompressed') as f:
        data = f.read()
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(records.ERRORS_TAG, records.error_for(ref, records.READ, e))
      return
    yield records.EncodedImage(ref, data)


class ReadImageFiles(beam.PTransform):
  """Image files named by globs or lists (local or any Beam filesystem such as gs://)."""

  def __init__(self, patterns: Sequence[str]):
    super().__init__()
    self._patterns = list(patterns)

  def expand(self, pbegin):
    read = (pbegin
            | 'Patterns' >> beam.Create(self._patterns)
            | 'Expand' >> beam.ParDo(inputs.ExpandInputs())
            | 'EachFileOnce' >> inputs.EachFileOnce()
            | 'ReadFiles' >> beam.ParDo(_ReadFile()).with_outputs(records.ERRORS_TAG, main='images'))
    return {'images': read.images, records.ERRORS_TAG: read[records.ERRORS_TAG]}
