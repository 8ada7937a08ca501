"""Small JPEG thumbnails of sampled rows, read from their sources with the job's own Beam-free format readers.

A row's `source` locates its image: a file, `PATH#offset=N` (a TFRecord
record, read with formats.tfrecord at that offset) or `PATH#member=NAME` (a
tar member, found with formats.webdataset; each shard is streamed once for all
its wanted members). Images are downscaled here and inlined as data: URIs, so
the page needs nothing but itself. An image that cannot be read shows why.
"""
import base64
import concurrent.futures
import gzip
import io
import os
import re
from typing import Dict, Iterable, Optional, Tuple

from PIL import Image, ImageOps

from transforms.read.formats import tf_example, tfrecord, webdataset
from transforms.read.settings import MAX_INPUT_BYTES

SIZE = 128  # pixels, the longer side
QUALITY = 75
THREADS = 8  # reads are I/O bound
_TFRECORD = re.compile(r'^(.*)#offset=(\d+)$')
_TAR = re.compile(r'^(.*?)#member=(.*)$')


# gs:// reads: an image or a record in small ranges (google-cloud-storage's reader would fetch 40 MiB at a time),
# a tar shard, streamed to its wanted members, in large ones.
_READ_CHUNK = 256 << 10
_STREAM_CHUNK = 8 << 20
_clients: Dict[bool, object] = {}


def _open(path: str, chunk: int = _READ_CHUNK):
  """A binary file, local or gs:// (google-cloud-storage, one client for the report; anonymous towards an
  emulator), read in small ranges."""
  if path.startswith('gs://'):
    from google.cloud import storage  # pylint: disable=import-outside-toplevel  # only for gs:// sources
    emulator = bool(os.environ.get('STORAGE_EMULATOR_HOST'))
    if emulator not in _clients:
      _clients[emulator] = storage.Client.create_anonymous_client() if emulator else storage.Client()
    bucket, _, name = path[len('gs://'):].partition('/')
    return _clients[emulator].bucket(bucket).blob(name).open('rb', chunk_size=chunk)
  return open(path[len('file://'):] if path.startswith('file://') else path, 'rb')  # pylint: disable=consider-using-with


def _size(f) -> Optional[int]:
  here = f.tell()
  end = f.seek(0, io.SEEK_END)
  f.seek(here)
  return end


def _tfrecord_image(path: str, offset: int, image_key: Optional[str], compressed: bool) -> bytes:
  with _open(path, _STREAM_CHUNK if compressed else _READ_CHUNK) as raw:
    f = gzip.GzipFile(fileobj=raw) if compressed else raw
    reader = tfrecord.RecordReader(f, None if compressed else _size(raw), MAX_INPUT_BYTES)
    item = next(iter(reader.read(offset, offset + 1, aligned=True)), None)
  if not isinstance(item, tfrecord.Record):
    raise ValueError(f'no readable record at byte {offset}')
  return tf_example.image_bytes(tf_example.features(item.data), image_key or tf_example.IMAGE_KEY)


def _tar_images(path: str, members: Iterable[str]) -> Dict[str, bytes]:
  """The wanted members' bytes, streaming the shard once and stopping when all are found."""
  wanted, found = set(members), {}
  with _open(path, _STREAM_CHUNK) as f:
    for sample in webdataset.samples(f, MAX_INPUT_BYTES):
      for ext, name in sample.names.items():
        if name in wanted and ext in sample.members:
          found[name] = sample.members[ext]
      if len(found) == len(wanted):
        break
  return found


def thumbnail(data: bytes) -> str:
  """A data: URI of the image downscaled to SIZE, as displayed (EXIF orientation applied)."""
  image = Image.open(io.BytesIO(data))
  image.draft('RGB', (SIZE * 2, SIZE * 2))  # JPEGs decode at a reduced scale: fast for large photos
  image = ImageOps.exif_transpose(image).convert('RGB')
  image.thumbnail((SIZE, SIZE))
  out = io.BytesIO()
  image.save(out, 'JPEG', quality=QUALITY)
  return 'data:image/jpeg;base64,' + base64.b64encode(out.getvalue()).decode('ascii')


def _group(sources: Iterable[str]) -> Dict[Tuple[str, str], list]:
  """(kind, path) -> the sources read together: each tar shard is opened once; TFRecord records, found by their
  offsets, are each read on their own (in parallel: on gs:// each costs round trips)."""
  groups: Dict[Tuple[str, str], list] = {}
  for source in sources:
    tar, record = _TAR.match(source), _TFRECORD.match(source)
    key = ('tar', tar.group(1)) if tar else ('tfrecord', source) if record else ('file', source)
    groups.setdefault(key, []).append(source)
  return groups


def _read_group(kind: str, path: str, sources: list, image_key: Optional[str], compression: str) -> Dict[str, tuple]:
  out = {}
  try:
    if kind == 'tar':
      members = {s: _TAR.match(s).group(2) for s in sources}
      found = _tar_images(path, members.values())
      raw = {s: found.get(m) for s, m in members.items()}
    elif kind == 'tfrecord':
      file = _TFRECORD.match(path).group(1)
      compressed = compression == 'gzip' or (compression in ('auto', None) and file.lower().endswith('.gz'))
      raw = {s: _tfrecord_image(file, int(_TFRECORD.match(s).group(2)), image_key, compressed) for s in sources}
    else:
      with _open(path) as f:
        raw = {path: f.read(MAX_INPUT_BYTES + 1)}
  except Exception as e:  # pylint: disable=broad-except  # a missing or unreadable source: said on the page
    return {s: (None, f'{type(e).__name__}: {e}'[:200]) for s in sources}
  for source in sources:
    data = raw.get(source)
    try:
      out[source] = (thumbnail(data), None) if data else (None, 'not found in its file')
    except Exception as e:  # pylint: disable=broad-except
      out[source] = (None, f'{type(e).__name__}: {e}'[:200])
  return out


def thumbnails(sources: Iterable[str], image_key: Optional[str] = None,
               compression: str = 'auto') -> Dict[str, tuple]:
  """source -> (data: URI or None, why not or None), read in parallel."""
  out: Dict[str, tuple] = {}
  with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
    futures = [pool.submit(_read_group, kind, path, group, image_key, compression)
               for (kind, path), group in _group(set(sources)).items()]
    for future in futures:
      out.update(future.result())
  return out
