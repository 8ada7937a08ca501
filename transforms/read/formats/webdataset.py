"""WebDataset tar shards as img2dataset and clip-retrieval write them, without Beam.

A shard is a tar whose members are grouped by key: `KEY.jpg` (or .png, ...) with
optional `KEY.json`, `KEY.txt`, ... next to it. The key is the member's path up
to the first dot of its file name, the rest is its extension, exactly as the
`webdataset` library splits them, and members of one sample are adjacent.
Shards are read as streams (any compression tarfile detects), one member in
memory at a time; nothing is ever extracted to disk, so member names such as
`../x.jpg` are only names, and links are never followed (a sample whose image
is a link becomes an error row that says so). Given a bound, a member whose
header declares more bytes is not read: tarfile skips its data in blocks and
the sample records its size (`too_large`), so memory stays about the bound.
"""
import io
import json
import re
import tarfile
from typing import BinaryIO, Dict, Iterator, NamedTuple, Optional

from transforms.read.formats import passthrough
from transforms.read.formats.detect import IMAGE_EXTENSIONS

_KEY_AND_EXTENSION = re.compile(r'^((?:.*/|)[^.]+)[.]([^/]*)$')  # webdataset's own rule


class Sample(NamedTuple):
  key: str
  members: Dict[str, bytes]  # extension (as written) -> bytes
  names: Dict[str, str]  # extension -> member name
  links: Dict[str, str]  # extension -> link target, for members that are links (never followed)
  too_large: Dict[str, int] = {}  # extension -> declared size, for members over the bound (not read); never mutated
  nameless: int = 0  # files before it whose names have no extension: members of no sample


class SampleError(ValueError):
  """A sample without a usable image, or a shard that cannot be read on."""


def split_name(name: str):
  """('dir/key', 'ext') for 'dir/key.ext', or None for names that are not sample members."""
  match = _KEY_AND_EXTENSION.match(name)
  return (match.group(1), match.group(2)) if match else None


class _Watched(tarfile.TarInfo):
  """A member header that keeps, on its TarFile, the header error that ended the archive: tarfile ends the
  iteration quietly at any bad header after the first, so a damaged shard would look whole."""

  @classmethod
  def fromtarfile(cls, tar):
    try:
      return super().fromtarfile(tar)
    except tarfile.HeaderError as e:
      tar.stopped_by = (tar.offset, e)
      raise


def _check_end(tar: tarfile.TarFile) -> None:
  """Raises tarfile.ReadError unless the archive ended at its end-of-archive block or at the end of the data."""
  offset, error = getattr(tar, 'stopped_by', (None, None))
  if isinstance(error, (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError)):
    raise tarfile.ReadError(f'the member header at byte {offset} is damaged ({error}): the shard was read no '
                            'further')


def samples(f: BinaryIO, max_member_bytes: Optional[int] = None) -> Iterator[Sample]:
  """The shard's samples in order; a repeated member starts a new sample rather than replacing one.

  Members larger than max_member_bytes (None: no bound) are skipped unread and listed in the sample's too_large.
  Raises tarfile.ReadError when a member holds fewer bytes than its header says, or after the last sample when
  the archive did not end at its end-of-archive block or the end of the data (a damaged header).
  """
  current: Optional[Sample] = None
  nameless = 0
  with tarfile.open(fileobj=f, mode='r|*', tarinfo=_Watched) as tar:
    for member in tar:
      parts = split_name(member.name) if member.isfile() or member.issym() or member.islnk() else None
      if parts is None:  # directories, devices: not sample members; a file without an extension is counted
        nameless += member.isfile()
        continue
      key, ext = parts
      if current is None or key != current.key or ext in current.names:
        if current is not None:
          yield current
        current, nameless = Sample(key, {}, {}, {}, {}, nameless), 0
      if member.isfile() and max_member_bytes is not None and member.size > max_member_bytes:
        current.too_large[ext] = member.size  # tarfile skips its data (in blocks) on the way to the next member
      elif member.isfile():
        data = tar.extractfile(member).read()
        if len(data) != member.size:
          raise tarfile.ReadError(f'{member.name}: {len(data)} bytes where its header says {member.size}')
        current.members[ext] = data
      else:
        current.links[ext] = member.linkname
      current.names[ext] = member.name
    if current is not None:
      yield current
    _check_end(tar)


def count_samples(f: BinaryIO) -> int:
  """The shard's samples as samples() groups them, from the members' headers alone: tarfile seeks over member
  data when f can seek (an uncompressed shard; a compressed one is decompressed). A shard that breaks off
  counts the samples before the break (the reader makes an error row of the rest)."""
  count, key, extensions = 0, None, set()
  try:
    with tarfile.open(fileobj=f, mode='r:*') as tar:
      for member in tar:
        parts = split_name(member.name) if member.isfile() or member.issym() or member.islnk() else None
        if parts is None:
          continue
        if parts[0] != key or parts[1] in extensions:
          count, key, extensions = count + 1, parts[0], set()
        extensions.add(parts[1])
  except (tarfile.TarError, OSError, EOFError):
    pass
  return count


def unused_members(sample: Sample, image: Optional[str], columns) -> Dict[str, int]:
  """The members no row holds, by extension: images but the sample's `image`, members that are no passthrough
  column's (a column is read from the member of its name, or from the .json member), files without an
  extension ('(none)')."""
  wanted = {c.name for c in columns} | ({'json'} if columns else set())
  unused: Dict[str, int] = {'(none)': sample.nameless} if sample.nameless else {}
  for ext in sample.names:
    if ext != image and ext.lower() not in wanted:
      unused[ext.lower()] = unused.get(ext.lower(), 0) + 1
  return unused


def image_extension(sample: Sample, wanted: Optional[str] = None) -> str:
  """The member holding the image: `wanted` if given, else the first known image extension."""
  found = None
  if wanted is not None:
    found = wanted if wanted in sample.names else None
  else:
    lowered = {ext.lower(): ext for ext in sample.names}
    found = next((lowered[ext] for ext in IMAGE_EXTENSIONS if ext in lowered), None)
  if found in sample.links:
    raise SampleError(f'{sample.names[found]} is a link (to {sample.links[found]!r}); links are not followed')
  if found is not None:
    return found
  have = ', '.join(sorted(sample.names))
  want = f'.{wanted} member' if wanted else 'image member (' + ', '.join(IMAGE_EXTENSIONS) + ')'
  raise SampleError(f'sample {sample.key!r} has no {want}; it has: {have}')


def sample_values(sample: Sample) -> Dict[str, passthrough.Values]:
  """Passthrough values by name: the fields of KEY.json, and each member by its extension (which wins)."""
  found = {}
  if 'json' in sample.members:
    try:
      document = json.loads(sample.members['json'])
    except ValueError as e:
      raise SampleError(f'{sample.names["json"]} is not valid JSON: {e}') from e
    if isinstance(document, dict):
      found = {k: v for k, v in ((k, passthrough.from_json(v)) for k, v in document.items()) if v is not None}
  found.update((ext, passthrough.Values(passthrough.BYTES, [data])) for ext, data in sample.members.items())
  return found


class ShardWriter:
  """Writes samples into one tar stream, members in key order as written, with fixed metadata."""

  def __init__(self, f: BinaryIO, gzip: bool = False):
    self._tar = tarfile.open(fileobj=f, mode='w|gz' if gzip else 'w|')

  def add(self, key: str, members: Dict[str, bytes]) -> None:
    for ext, data in members.items():
      info = tarfile.TarInfo(f'{key}.{ext}')
      info.size, info.mode, info.mtime = len(data), 0o444, 0
      self._tar.addfile(info, io.BytesIO(data))

  def close(self) -> None:
    self._tar.close()
