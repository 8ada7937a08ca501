"""Image files by glob or list -> EncodedImage(ref, bytes), plus read errors.

Inputs are matched on a worker and the file names (not their bytes) grouped
into read units by a hash of the path (units.py: `images/BBBBB-of-NNNNN`, N =
--image_groups), each file once; the units are spread over every worker, and
a resumed job skips the groups it committed without opening their files.

A file larger than --max_input_bytes (its size from the listing, else a
match) is an error row, never read. A read that fails with a storage error is
retried with backoff (retry.resilient); if storage keeps failing, the file's
path goes on the unread output.
"""
from typing import Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import elements
from transforms.read import match, outcomes, retry, units
from transforms.read.formats import detect
from transforms.read.settings import MAX_INPUT_BYTES, InputTooLarge

_READ_BYTES = 1 << 20  # per read call


def _size(file: match.FileRef) -> Optional[int]:
  """The file's size from the listing, else a match; None for a file not found (opening it will say so)."""
  if file.size is not None:
    return file.size
  found = FileSystems.match([file.path])[0].metadata_list
  return found[0].size_in_bytes if found else None


def read_file(file: match.FileRef, max_bytes: int, _position=None) -> Iterable:
  """((the file's bytes, None),) or InputTooLarge; one attempt (retry.resilient's read)."""
  size = _size(file)
  if size is not None and size > max_bytes:
    raise InputTooLarge('the file', size, max_bytes)
  chunks, total = [], 0
  with FileSystems.open(file.path, compression_type='uncompressed') as f:
    while total <= max_bytes:  # a read may return less than asked (a network stream): read on to the end
      # In steps: read(n) allocates n bytes up front, which for the bound (256 MiB) costs 0.3 ms per image.
      chunk = f.read(min(_READ_BYTES, max_bytes + 1 - total))
      if not chunk:
        break
      chunks.append(chunk)
      total += len(chunk)
  if total > max_bytes:  # grew since it was listed
    raise InputTooLarge('the file', total, max_bytes)
  yield chunks[0] if len(chunks) == 1 else b''.join(chunks), None


class _ReadFile(beam.DoFn):

  def __init__(self, max_bytes: int = MAX_INPUT_BYTES):
    self._read = outcomes.ReadCounter()
    self._max_bytes = max_bytes

  def process(self, file: match.FileRef) -> Iterable:
    ref = elements.ImageRef(file.id, file.path)
    try:
      (data,) = retry.resilient(lambda at: read_file(file, self._max_bytes, at), None, lambda at: file.path)
    except Exception as e:  # pylint: disable=broad-except
      self._read.inc()
      yield beam.pvalue.TaggedOutput(elements.ERRORS_TAG, elements.error_for(ref, elements.READ, e))
      return
    if isinstance(data, retry.Unread):
      yield beam.pvalue.TaggedOutput(retry.UNREAD_TAG, data.location)
      return
    self._read.inc()
    yield elements.EncodedImage(ref, data)


def planner(groups: int):
  """FileRef -> [(its unit, itself)]: the group its path hashes to."""
  return lambda file: [(units.image_group(file.path, groups), file)]


def reader(max_bytes: int = MAX_INPUT_BYTES) -> beam.DoFn:
  return _ReadFile(max_bytes)


def ReadImageFiles(patterns: Sequence[str], max_bytes: int = MAX_INPUT_BYTES,  # pylint: disable=invalid-name
                   groups: int = units.DEFAULT_IMAGE_GROUPS) -> beam.PTransform:
  """Image files named by globs, folders or lists (local or any Beam filesystem such as gs://)."""
  return outcomes.MatchAndRead(patterns, detect.IMAGES, planner(groups), reader(max_bytes))
