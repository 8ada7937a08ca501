"""Decoding JPEGs at reduced scale (Pillow's draft) before the resize: same displayed size, nearly the same
pixels, only when the image is at least twice the target."""
import io

import numpy as np
import pytest
from PIL import Image

from tests import datagen
from transforms import decode


def _jpeg(width, height, orientation=1, mode='RGB'):
  photo = Image.open(datagen.photo_named('cat')).convert('RGB').resize((width, height), Image.Resampling.BILINEAR)
  exif = Image.Exif()
  exif[0x0112] = orientation
  buf = io.BytesIO()
  photo.convert(mode).save(buf, 'JPEG', quality=90, exif=exif)
  return buf.getvalue()


@pytest.mark.parametrize('orientation, displayed', [(1, (1000, 600)), (3, (1000, 600)), (6, (600, 1000)),
                                                    (8, (600, 1000))])
def test_reduced_decode_keeps_the_displayed_full_size(orientation, displayed):
  image = decode.open_image(_jpeg(1000, 600, orientation), reduce_to=(160, 160))
  assert image.info[decode.FULL_SIZE] == displayed
  assert image.size == tuple(side // 2 for side in displayed)  # 1/2 scale: 1/4 would fall under 160


@pytest.mark.parametrize('size, target, reduced', [((500, 375), (160, 160), (250, 188)),
                                                   ((300, 375), (160, 160), (300, 375)),
                                                   ((2000, 1500), (160, 160), (250, 188)),
                                                   ((500, 375), (224, 224), (500, 375))])
def test_scale_keeps_at_least_the_target(size, target, reduced):
  assert decode.open_image(_jpeg(*size), reduce_to=target).size == reduced


def test_reduced_pixels_stay_close_and_other_formats_are_untouched():
  data = _jpeg(500, 375)
  full = decode.resize(decode.to_rgb(decode.open_image(data)), (160, 160), 'bilinear')
  reduced = decode.decode(data, (160, 160))
  assert reduced.shape == full.shape == (160, 160, 3)
  assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3
  png = io.BytesIO()
  Image.open(io.BytesIO(data)).save(png, 'PNG')
  assert np.array_equal(decode.decode(png.getvalue(), (160, 160)),
                        decode.resize(decode.to_rgb(decode.open_image(png.getvalue())), (160, 160), 'bilinear'))
  for mode in ('L', 'CMYK'):  # draft keeps the stored mode; to_rgb converts as before
    image = decode.open_image(_jpeg(1000, 600, mode=mode), reduce_to=(160, 160))
    assert (image.mode, image.size) == (mode, (500, 300))
