"""Which format a file is in: by its name's extension, else by its first bytes."""
import gzip
import io
import posixpath
import struct
from typing import Optional

from transforms.read.formats import tfrecord

IMAGES, TFRECORD, TAR, PARQUET, ARROW = 'images', 'tfrecord', 'tar', 'parquet', 'arrow'
FORMATS = (IMAGES, TFRECORD, TAR, PARQUET, ARROW)
TABLES = (PARQUET, ARROW)  # formats whose inputs are tables of rows (transforms/read/formats/parquet_table.py)
AUTO = 'auto'
# Image file extensions, in the order a WebDataset sample's image member is chosen by: the photo formats Pillow
# decodes with what requirements.txt installs (AVIF is built into Pillow 11; HEIC would need pillow-heif).
IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp', 'bmp', 'gif', 'tif', 'tiff', 'ppm', 'jfif', 'jpe', 'avif', 'avifs',
                    'apng', 'jp2', 'j2k', 'jpx', 'pgm', 'pbm', 'pnm', 'qoi', 'tga')
TFRECORD_EXTENSIONS = ('.tfrecord', '.tfrecords', '.tfrec', '.record', '.records')
TAR_EXTENSIONS = ('.tar', '.tar.gz', '.tgz')
PARQUET_EXTENSIONS = ('.parquet', '.parq')
ARROW_EXTENSIONS = ('.arrow', '.arrows', '.feather', '.ipc')  # IPC streams (Hugging Face's save_to_disk) and files
# Files that sit beside data sets (img2dataset's .parquet and _stats.json, notes, checksums): a glob leaves them
# out, counted as skipped, unless it names their extension itself (a glob of .parquet files reads tables).
SIDECAR_EXTENSIONS = ('.parquet', '.json', '.jsonl', '.csv', '.tsv', '.txt', '.md', '.html', '.yaml', '.yml', '.log',
                      '.pkl', '.npy', '.npz', '.crc', '.md5', '.sha256')
_IMAGE_SUFFIXES = tuple('.' + ext for ext in IMAGE_EXTENSIONS)
_IMAGE_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM', b'II*\x00', b'MM\x00*')


def extension(path: str) -> str:
  """The file name's last extension, lower case ('' when it has none)."""
  return posixpath.splitext(path.rsplit('/', 1)[-1])[1].lower()


def is_image_name(path: str) -> bool:
  return path.lower().endswith(_IMAGE_SUFFIXES)


def format_by_name(path: str) -> Optional[str]:
  name = path.lower()
  if name.endswith(TAR_EXTENSIONS):
    return TAR
  if name.endswith(PARQUET_EXTENSIONS):
    return PARQUET
  if name.endswith(ARROW_EXTENSIONS):
    return ARROW
  name = name[:-3] if name.endswith('.gz') else name
  if name.endswith(TFRECORD_EXTENSIONS):
    return TFRECORD
  if is_image_name(name):
    return IMAGES
  return None


def format_by_content(head: bytes) -> Optional[str]:
  """The format of a file from its first bytes (at least 512 of them when the file is that long)."""
  if head[:2] == b'\x1f\x8b':
    try:
      head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(1024)
    except (OSError, EOFError):
      return None
  if head[257:262] == b'ustar':
    return TAR
  if head[:4] == b'PAR1':
    return PARQUET
  if head[:6] == b'ARROW1':
    return ARROW
  if (head.startswith(_IMAGE_MAGIC) or (head[:4] == b'RIFF' and head[8:12] == b'WEBP')
      or head[4:12] in (b'ftypavif', b'ftypavis')):  # AVIF: an ISO-BMFF file of brand avif
    return IMAGES
  if len(head) >= tfrecord.HEADER_BYTES:
    length, crc = struct.unpack('<QI', head[:tfrecord.HEADER_BYTES])
    if crc == tfrecord.masked_crc32c(head[:8]) and length < 1 << 40:
      return TFRECORD
  return None
