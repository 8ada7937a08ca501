"""Decode stage: RGB at the model size, orientation applied, bad bytes reported by stage."""
import io

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from transforms import decode, elements
from tests import datagen


def _encode(image, fmt='PNG', **kwargs):
  buf = io.BytesIO()
  image.save(buf, fmt, **kwargs)
  return buf.getvalue()


def test_exif_orientation_applied():
  image = Image.new('RGB', (40, 20), (255, 0, 0))
  image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
  exif = Image.Exif()
  exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
  opened = decode.open_image(_encode(image, 'JPEG', exif=exif, quality=95))
  assert opened.size == (20, 40)
  pixels = np.asarray(decode.to_rgb(opened))
  assert pixels[2, 10, 2] > 200 and pixels[-3, 10, 0] > 200  # blue on top, red below


VARIANTS = datagen.image_variants()


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_each_variant_decodes_to_what_a_viewer_shows(name):
  """EXIF turns, CMYK, 16-bit, palette and alpha, grayscale, GIF, WebP, BMP against numpy references."""
  data, expected, tolerance = VARIANTS[name]
  pixels = np.asarray(decode.to_rgb(decode.open_image(data)))
  assert pixels.dtype == np.uint8 and pixels.shape == expected.shape
  assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= tolerance


def test_variants_through_the_decode_stage_keep_their_displayed_size():
  inputs = [elements.EncodedImage(elements.ImageRef(name, f'mem://{name}'), data)
            for name, (data, _, _) in sorted(VARIANTS.items())]
  with TestPipeline() as p:
    out = p | beam.Create(inputs) | beam.ParDo(decode.DecodeImages((16, 16)))
    assert_that(out | beam.Map(lambda d: (d.ref.id, d.width, d.height, d.pixels.shape)),  # no error records
                equal_to([(name, e.shape[1], e.shape[0], (16, 16, 3)) for name, (_, e, _) in VARIANTS.items()]))


def test_grayscale_becomes_rgb_at_model_size():
  gray = Image.new('L', (30, 50), 128)
  pixels = decode.resize(decode.to_rgb(decode.open_image(_encode(gray))), (16, 24), 'bilinear')
  assert pixels.shape == (16, 24, 3) and pixels.dtype == np.uint8
  assert np.all(pixels == 128)


@pytest.mark.parametrize('data, words', [(b'', 'empty file'), (b'<html>hello</html>', 'not an image')])
def test_bad_bytes_raise_decode_error(data, words):
  with pytest.raises(decode.DecodeError, match=words):
    decode.open_image(data)


def test_dofn_turns_failures_into_error_records_and_passes_the_rest_through():
  good = datagen.PHOTOS.joinpath('hot_dog.jpg').read_bytes()
  earlier = elements.ErrorRecord('r', 'mem://r', elements.READ, 'X', 'unreadable', 'u1')
  end = elements.UnitEnd('u1', 3)
  inputs = [
      elements.EncodedImage(elements.ImageRef('good', 'mem://good.jpg', unit='u1'), good),
      elements.EncodedImage(elements.ImageRef('cut', 'mem://cut.jpg', unit='u1'), good[:2000]),
      earlier, end,
  ]
  with TestPipeline() as p:
    out = p | beam.Create(inputs) | beam.ParDo(decode.DecodeImages((160, 160)))
    assert_that(out | beam.Map(_summary), equal_to([('good', 512, 384, (160, 160, 3), 'u1'), earlier, end,
                                                     ('cut', 'mem://cut.jpg', 'decode', 'u1')]))


def _summary(item):
  if isinstance(item, elements.DecodedImage):
    return item.ref.id, item.width, item.height, item.pixels.shape, item.ref.unit
  if isinstance(item, elements.ErrorRecord) and item.stage == 'decode':
    return item.id, item.source, item.stage, item.unit
  return item
