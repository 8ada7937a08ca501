"""Image files by glob or list -> EncodedImage(ref, bytes), plus read errors.

Inputs are matched on a worker and the file names (not their bytes) grouped
by path (match.MatchInputs), so that each file is read once and reading and
all later fused stages spread over every worker instead of running where the
single pattern element landed.
"""
from typing import Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import elements
from transforms.read import match, outcomes
from transforms.read.formats import detect


class _ReadFile(beam.DoFn):

  def __init__(self):
    self._read = outcomes.ReadCounter()

  def process(self, file: match.FileRef) -> Iterable:
    self._read.inc()
    ref = elements.ImageRef(file.id, file.path)
    try:
      with FileSystems.open(file.path, compression_type='uncompressed') as f:
        data = f.read()
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, elements.error_for(ref, elements.READ, e))
      return
    yield elements.EncodedImage(ref, data)


class ReadImageFiles(beam.PTransform):
  """Image files named by globs or lists (local or any Beam filesystem such as gs://)."""

  def __init__(self, patterns: Sequence[str]):
    super().__init__()
    self._patterns = list(patterns)

  def expand(self, pbegin):
    read = (pbegin
            | 'Match' >> match.MatchInputs(self._patterns, detect.IMAGES)
            | 'ReadFiles' >> beam.ParDo(_ReadFile()).with_outputs(elements.ERRORS_TAG, main='images'))
    return {'images': read.images, elements.ERRORS_TAG: read[elements.ERRORS_TAG]}
