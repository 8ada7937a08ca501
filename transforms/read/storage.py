"""Reading bytes from storage: one client per worker process, the fewest round trips a read can cost.

Beam's GCS filesystem builds a client for each `open`, reloads the object's
metadata, then downloads it: several round trips in a row for every image.
Here, for gs:// paths, each worker process keeps one client per kind and reuses
its connections:
  - a whole object (an image file) is one GET (`alt=media`), through pyarrow's
    GcsFileSystem (Google's C++ client: it holds no GIL while it waits and
    parses, about 0.3 ms of CPU per small object against 1.6 ms for
    google-cloud-storage's download; benchmarks/latency_proxy.py measured both);
  - a byte range (a chunk of a TFRecord range or tar shard) is one ranged GET,
    through google-cloud-storage, with a connection pool as large as the read
    window (pyarrow's random-access files begin with a metadata request).
Neither client retries on its own for long: retry.resilient is the one retry
loop, so that what keeps failing is reported unread, exactly where.

http(s) locations (a URI table's, with --allow_http) are one GET through the
process's requests session: 404 and 410 are a missing file, 401 and 403 no
permission (error rows), other failures are storage errors, retried. Other
schemes (local disk, and whatever Beam's FileSystems knows) are read through
FileSystems. $STORAGE_EMULATOR_HOST (as google-cloud-storage honours
it) sends gs:// requests to an emulator, anonymously.
"""
import datetime
import os
import threading
from typing import Optional, Tuple

from apache_beam.io.filesystems import FileSystems

from transforms.read.settings import InputTooLarge, ReadSettings

GCS = 'gs://'
HTTP = ('http://', 'https://')  # a URI table's locations, read only with --allow_http (parquet_tables.py)
HTTP_TIMEOUT_SECONDS = 30  # to connect, and between bytes
RETRY_SECONDS = 2  # how long pyarrow's client retries a request itself, before retry.resilient sees the error
_READ_BYTES = 1 << 20  # per read call of a local or other file

_clients = {}
_lock = threading.Lock()


def is_gcs(path: str) -> bool:
  return path.startswith(GCS)


def split(path: str) -> Tuple[str, str]:
  bucket, _, name = path[len(GCS):].partition('/')
  return bucket, name


def pyarrow_gcs(anonymous: bool = False, retry_seconds: float = RETRY_SECONDS):
  """pyarrow's GcsFileSystem, towards $STORAGE_EMULATOR_HOST (anonymously) when it is set."""
  from pyarrow import fs as pafs  # pylint: disable=import-outside-toplevel
  options = {'retry_time_limit': datetime.timedelta(seconds=retry_seconds), 'anonymous': anonymous}
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    scheme, _, endpoint = emulator.rpartition('://')
    options.update(endpoint_override=endpoint, scheme=scheme or 'http', anonymous=True)
  return pafs.GcsFileSystem(**options)


def _client(kind: str, anonymous: bool, pool: int):
  """The process's client of that kind (built once: a client per read costs round trips and CPU)."""
  key = (kind, anonymous, os.environ.get('STORAGE_EMULATOR_HOST'))
  with _lock:
    client = _clients.get(key)
    if client is None:
      client = _clients[key] = pyarrow_gcs(anonymous) if kind == 'objects' else _ranges_client(anonymous, pool)
    return client


def list_client(anonymous: bool = False):
  """The process's google-cloud-storage client, for listings (transforms/read/listing.py)."""
  return _client('ranges', anonymous, 10)


def _ranges_client(anonymous: bool, pool: int):
  from apache_beam.io.gcp import gcsio  # pylint: disable=import-outside-toplevel
  from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=import-outside-toplevel
  from requests import adapters  # pylint: disable=import-outside-toplevel
  client = gcsio.create_storage_client(PipelineOptions([]), use_credentials=not anonymous)
  adapter = adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 10), max_retries=0)
  for scheme in ('http://', 'https://'):
    client._http.mount(scheme, adapter)  # pylint: disable=protected-access
  return client


class Storage:
  """How this worker process reads: `anonymous` (--no_auth) and the connections it keeps (the read window)."""

  def __init__(self, anonymous: bool = False, pool: int = 10):
    self.anonymous = anonymous
    self.pool = pool

  @classmethod
  def of(cls, settings: ReadSettings) -> 'Storage':
    return cls(settings.anonymous, settings.reads_in_flight)

  def read_object(self, path: str, size: Optional[int], max_bytes: int) -> bytes:
    """The whole file: one GET on gs://. Raises InputTooLarge, unread, for a file over max_bytes by the listing's
    size; a file of unknown size (named by a list) is read up to max_bytes + 1, so that no file costs a metadata
    request of its own."""
    if size is not None and size > max_bytes:
      raise InputTooLarge('the file', size, max_bytes)
    if path.startswith(HTTP):
      data = _read_http(path, max_bytes)
    elif is_gcs(path):
      try:
        with _client('objects', self.anonymous, self.pool).open_input_stream(path[len(GCS):]) as f:
          data = f.read(max_bytes + 1)
      except OSError as e:  # pyarrow says 404 as FileNotFoundError, 403 only in its message
        if 'PERMISSION_DENIED' in str(e) and not isinstance(e, PermissionError):
          raise PermissionError(str(e)) from e
        raise
    else:
      data = _read_local(path, max_bytes)
    if len(data) > max_bytes:  # grew since it was listed, or of unknown size
      raise InputTooLarge('the file', None, max_bytes)
    return data

  def read_range(self, path: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the file (fewer at its end): one ranged GET on gs://."""
    if end <= start:
      return b''
    if is_gcs(path):
      from google.api_core import exceptions  # pylint: disable=import-outside-toplevel
      bucket, name = split(path)
      blob = _client('ranges', self.anonymous, self.pool).bucket(bucket).blob(name)
      try:
        return blob.download_as_bytes(start=start, end=end - 1, raw_download=True, checksum=None, retry=None)
      except exceptions.RequestRangeNotSatisfiable:
        return b''  # at or past the end
    with FileSystems.open(path, compression_type='uncompressed') as f:
      f.seek(start)
      return _read_all(f, end - start)


def _read_all(f, n: int) -> bytes:
  """Up to n bytes: a read may return less than asked (a network stream), so read on to n or the end."""
  chunks, total = [], 0
  while total < n:
    # In steps: read(n) allocates n bytes up front, which for the bound (256 MiB) costs 0.3 ms per image.
    chunk = f.read(min(_READ_BYTES, n - total))
    if not chunk:
      break
    chunks.append(chunk)
    total += len(chunk)
  return chunks[0] if len(chunks) == 1 else b''.join(chunks)


def _read_local(path: str, max_bytes: int) -> bytes:
  with FileSystems.open(path, compression_type='uncompressed') as f:
    return _read_all(f, max_bytes + 1)


def _http_session():
  with _lock:
    session = _clients.get('http')
    if session is None:
      import requests  # pylint: disable=import-outside-toplevel
      session = _clients['http'] = requests.Session()
    return session


def _read_http(url: str, max_bytes: int) -> bytes:
  """The body of one GET, up to max_bytes + 1 bytes (the caller refuses more)."""
  with _http_session().get(url, stream=True, timeout=HTTP_TIMEOUT_SECONDS) as response:
    if response.status_code in (404, 410):
      raise FileNotFoundError(f'{url}: HTTP {response.status_code}')
    if response.status_code in (401, 403):
      raise PermissionError(f'{url}: HTTP {response.status_code}')
    if response.status_code != 200:
      raise ConnectionError(f'{url}: HTTP {response.status_code}')  # 429, 5xx: retried
    chunks, total = [], 0
    for chunk in response.iter_content(_READ_BYTES):
      chunks.append(chunk)
      total += len(chunk)
      if total > max_bytes:
        break
    return b''.join(chunks)
