"""A corpus of broken and awkward inputs, as image files, TFRecord shards and tar shards.

Each case says what the job must make of it: a row ('row'), an error row at a stage, or either
('any': decodable garbage such as a JPEG with corrupt entropy data, which libjpeg decodes with
artifacts, as browsers show it). The real photos go in beside them: they must still get the
golden predictions.
"""
import io
import pathlib
import shutil
import struct
import tarfile
import zlib
from typing import Dict, List, NamedTuple, Tuple

import numpy as np
from PIL import Image

from tests import datagen
from transforms.read.formats import tfrecord

ROW, ANY = 'row', 'any'
BOMB_SIDE = 30000


class Case(NamedTuple):
  data: bytes
  expect: str  # ROW, ANY, or the stage of the error row
  words: str = ''  # words the error message must hold


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  image.save(buf, fmt, **kwargs)
  return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
  return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def png_bomb(side: int = BOMB_SIDE) -> bytes:
  """A PNG whose header claims side x side pixels; its data is a few bytes of a zlib stream."""
  header = struct.pack('>IIBBBBB', side, side, 8, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', header) + _chunk(b'IDAT', zlib.compress(b'\x00' * 1024))
          + _chunk(b'IEND', b''))


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
  """The JPEG with an APP1 segment holding payload right after SOI."""
  return jpeg[:2] + b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload + jpeg[2:]


def _oversized_exif(jpeg: bytes) -> bytes:
  """An EXIF block at the segment size limit (64 KiB): orientation 6, then a huge undefined-type tag."""
  padding = 65533 - 2 - 6 - 8 - 2 - 2 * 12 - 4
  tiff = b'MM\x00*' + struct.pack('>I', 8) + struct.pack('>H', 2)
  tiff += struct.pack('>HHII', 0x0112, 3, 1, 6 << 16)  # orientation = 6 (rotate 90 clockwise to display)
  tiff += struct.pack('>HHII', 0x927C, 7, padding, 8 + 2 + 2 * 12 + 4)  # MakerNote, `padding` bytes
  tiff += struct.pack('>I', 0) + b'\xa5' * padding
  return _with_app1(jpeg, b'Exif\x00\x00' + tiff)


def image_cases(seed: int = 0) -> Dict[str, Case]:
  """name (with the extension the file gets) -> Case."""
  rng = np.random.default_rng(seed)
  photo = Image.open(datagen.photo_named('cat')).convert('RGB')
  small = photo.resize((120, 80), Image.Resampling.BILINEAR)
  jpeg = _encode(small, 'JPEG', quality=90)
  scan = jpeg.find(b'\xff\xda')
  corrupt = bytearray(jpeg)
  for i in rng.integers(scan + 20, len(jpeg) - 10, 40):
    corrupt[i] = int(rng.integers(0, 255))
  png = _encode(small, 'PNG')
  bad_crc = bytearray(png)
  idat = png.find(b'IDAT')
  bad_crc[idat + 4 + struct.unpack('>I', png[idat - 4:idat])[0]] ^= 0xFF  # the IDAT chunk's CRC
  variants = datagen.image_variants(seed)
  cases = {
      'zero_bytes.jpg': Case(b'', 'decode', 'empty'),
      'jpeg_cut_in_header.jpg': Case(jpeg[:100], 'decode', 'truncated image'),
      'jpeg_cut_at_scan.jpg': Case(jpeg[:scan + 4], 'decode', 'truncated image'),
      'jpeg_cut_in_half.jpg': Case(jpeg[:len(jpeg) // 2], 'decode', 'truncated JPEG image'),
      'jpeg_without_end_marker.jpg': Case(jpeg[:-2], ANY),
      'jpeg_corrupt_entropy_data.jpg': Case(bytes(corrupt), ANY),
      'png_bad_crc.png': Case(bytes(bad_crc), 'decode', 'corrupt PNG image: a checksum does not match'),
      'png_cut.png': Case(png[:len(png) // 2], 'decode', 'truncated PNG image'),
      'text_named.jpg': Case(b'just some text, not an image\n' * 20, 'decode', 'not an image: its bytes match no'),
      'html_named.jpg': Case(b'<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n', 'decode',
                             'not an image: its bytes match no image format'),
      'one_pixel.png': Case(_encode(Image.new('RGB', (1, 1), (200, 30, 30)), 'PNG'), ROW),
      'bomb_30000x30000.png': Case(png_bomb(), 'decode', 'too large'),
      'animated.gif': Case(variants['gif_first_frame'][0], ROW),
      'cmyk.jpg': Case(variants['cmyk_jpeg'][0], ROW),
      'gray_16bit.png': Case(variants['gray_16bit_png'][0], ROW),
      'rgb_16bit.png': Case(variants['rgb_16bit_png'][0], ROW),
      'palette_alpha.png': Case(variants['palette_alpha_png'][0], ROW),
      'exif_rotated.jpg': Case(variants['exif_orientation_6'][0], ROW),
      'oversized_exif.jpg': Case(_oversized_exif(jpeg), ROW),
      'png_named.jpg': Case(png, ROW),
      'bmp_bad_header.bmp': Case(b'BM' + b'\xff' * 60, 'decode', 'truncated image'),
      'webp_cut.webp': Case(variants['webp_lossless'][0][:40], 'decode', 'not a readable image'),
  }
  return cases


def good_photos() -> List[pathlib.Path]:
  return datagen.photo_paths()


def write_image_files(directory: pathlib.Path) -> Dict[str, Case]:
  """The corpus and the real photos as files; returns id -> Case (photos as ROW)."""
  directory.mkdir(parents=True, exist_ok=True)
  expected = {}
  for name, case in image_cases().items():
    (directory / name).write_bytes(case.data)
    expected[name.rsplit('.', 1)[0]] = case
  for photo in good_photos():
    shutil.copy(photo, directory / photo.name)
    expected[photo.stem] = Case(b'', ROW)
  return expected


def _damage(path: pathlib.Path, offset: int) -> None:
  data = bytearray(path.read_bytes())
  data[offset] ^= 0xFF
  path.write_bytes(bytes(data))


def write_tfrecords(directory: pathlib.Path) -> Tuple[Dict[str, Case], List[Tuple[str, str]]]:
  """The corpus as tf.Example records in shards, with record-level damage of its own.

  Returns id -> Case for every record with an id, and (file name, words) for each error row that has
  no id of its own but its location (damaged bytes, a record that is no tf.Example, a foreign file).
  """
  directory.mkdir(parents=True, exist_ok=True)
  expected: Dict[str, Case] = {}
  records = []
  for name, case in image_cases().items():
    key = name.rsplit('.', 1)[0]
    records.append(datagen.example(image__encoded=[case.data], image__id=[key.encode()]))
    expected[key] = case
  for photo in good_photos():
    records.append(datagen.example(image__encoded=[photo.read_bytes()], image__id=[photo.stem.encode()]))
    expected[photo.stem] = Case(b'', ROW)
  records += [
      datagen.example(image__id=[b'no_image_feature'], label=[3]),
      datagen.example(image__encoded=[7], image__id=[b'image_is_int64']),
      datagen.example(image__encoded=[b''], image__id=[b'empty_image_bytes']),
      b'\x08\x96\x01 this is not a serialized tf.Example at all',
  ]
  expected['no_image_feature'] = Case(b'', 'read', "no image feature 'image/encoded'")
  expected['image_is_int64'] = Case(b'', 'read', 'holds int64 values, not bytes')
  expected['empty_image_bytes'] = Case(b'', 'decode', 'empty')
  half = len(records) // 2
  datagen.write_tfrecord(directory / 'corpus-00000-of-00002.tfrecord', records[:half])
  datagen.write_tfrecord(directory / 'corpus-00001-of-00002.tfrecord', records[half:])
  located = [('corpus-00001-of-00002.tfrecord', 'not a tf.train.Example')]  # the last record: no id to read
  # A shard with damage in the middle: the records around the damaged ones are still read.
  damaged = [datagen.example(image__encoded=[p.read_bytes()], image__id=[f'damaged_shard_{p.stem}'.encode()])
             for p in good_photos()]
  path = datagen.write_tfrecord(directory / 'damaged-00000-of-00001.tfrecord', damaged)
  offsets = np.cumsum([0] + [len(r) + tfrecord.OVERHEAD for r in damaged])
  _damage(path, int(offsets[2]) + 9)  # record 2: its length CRC
  _damage(path, int(offsets[3]) + tfrecord.HEADER_BYTES + 100)  # record 3: its data (so its data CRC fails)
  for i, photo in enumerate(good_photos()):
    if i not in (2, 3):  # the golden photos (bird, cat, hot_dog, chips) come before and after
      expected[f'damaged_shard_{photo.stem}'] = Case(b'', ROW)
  located += [('damaged-00000-of-00001.tfrecord', 'length CRC'), ('damaged-00000-of-00001.tfrecord', 'data CRC')]
  # Duplicate ids: two different records that say they are the same image.
  cat, dog = datagen.photo_named('cat').read_bytes(), datagen.photo_named('hot_dog').read_bytes()
  datagen.write_tfrecord(directory / 'dupes-00000-of-00001.tfrecord', [
      datagen.example(image__encoded=[cat], image__id=[b'same_id']),
      datagen.example(image__encoded=[dog], image__id=[b'same_id'])])
  # A file in the TFRecord glob that is no TFRecord file at all.
  (directory / 'notes-00000-of-00001.tfrecord').write_bytes(b'a text file that ended up among the shards\n' * 40)
  located.append(('notes-00000-of-00001.tfrecord', 'skipped'))
  return expected, located


def write_tar(directory: pathlib.Path) -> pathlib.Path:
  """A WebDataset shard with a traversal name, a link, and a sample without an image beside good samples."""
  directory.mkdir(parents=True, exist_ok=True)
  path = directory / 'shard-00000.tar'
  with tarfile.open(path, 'w') as tar:
    def add(name, data):
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
    add('good.jpg', datagen.photo_named('hot_dog').read_bytes())
    add('good.json', b'{"caption": "a hot dog"}')
    add('../../escaped.jpg', datagen.photo_named('cat').read_bytes())
    link = tarfile.TarInfo('linked.jpg')
    link.type, link.linkname = tarfile.SYMTYPE, '/etc/passwd'
    tar.addfile(link)
    add('caption_only.txt', b'a sample without an image')
  return path

