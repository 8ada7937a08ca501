"""Read stage: input patterns -> EncodedImage(ref, bytes), plus read errors.

Patterns are expanded on workers, then reshuffled, so that reading and all
later fused stages spread over every worker instead of running where the
single pattern element landed.
"""
import os
import posixpath
from typing import Iterable, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import records

_WILDCARDS = '*?['
NAMESPACE = 'images'


def pattern_base(pattern: str) -> str:
  """The directory part of a glob before its first wildcard: ids are relative to it."""
  cut = min([pattern.find(c) for c in _WILDCARDS if c in pattern] or [len(pattern)])
  head = pattern[:cut]
  if cut == len(pattern):  # a plain file name: its directory is the base
    return posixpath.dirname(head) if '://' in head else os.path.dirname(head)
  return head[:head.rfind('/') + 1] if '/' in head else ''


def file_id(path: str, base: str) -> str:
  """The file's path under its pattern's base, without extension: 'sub/cat' for DIR/sub/cat.jpg."""
  rel = path[len(base):] if base and path.startswith(base) else path.rsplit('/', 1)[-1]
  rel = rel.lstrip('/')
  stem, _ = posixpath.splitext(rel)
  return stem or rel


class _ExpandPattern(beam.DoFn):

  def process(self, pattern: str) -> Iterable:
    base = pattern_base(pattern)
    for match in FileSystems.match([pattern])[0].metadata_list:
      yield base, match.path


class _ReadFile(beam.DoFn):

  def __init__(self):
    self._read = Metrics.counter(NAMESPACE, 'records_read')

  def process(self, base_and_path) -> Iterable:
    base, path = base_and_path
    self._read.inc()
    ref = records.ImageRef(file_id(path, base), path)
    try:
      with FileSystems.open(path, compression_type='uncompressed') as f:
        data = f.read()
    except Exception as e:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(records.ERRORS_TAG, records.error_for(ref, records.READ, e))
      return
    yield records.EncodedImage(ref, data)


class ReadImageFiles(beam.PTransform):
  """Image files by one or more globs (local or any Beam filesystem such as gs://)."""

  def __init__(self, patterns: Sequence[str]):
    super().__init__()
    self._patterns = list(patterns)

  def expand(self, pbegin):
    return (pbegin
            | 'Patterns' >> beam.Create(self._patterns)
            | 'Match' >> beam.ParDo(_ExpandPattern())
            | 'Spread' >> beam.Reshuffle()
            | 'ReadFiles' >> beam.ParDo(_ReadFile()).with_outputs(records.ERRORS_TAG, main='images'))
