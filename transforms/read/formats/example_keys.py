"""Which tf.Example features hold the image and the id, found from an input's first records at launch.

TFRecords written by other tools keep the image elsewhere than `image/encoded`:
tensorflow_datasets writes it under `image` and the file name under `file_name`.
Read with the defaults, every record would be a read error row: 10^8 error rows
and a "successful" job. So the plan looks first: when the image feature is
absent from every sampled record and exactly one bytes feature holds an image
in them all, that one is used (said in the log and kept in job.json as
`image_key`); otherwise the job is refused at launch, naming the features found.
"""
from typing import Dict, List, Optional, Sequence, Tuple

from transforms.read.formats import passthrough, tf_example
from transforms.read.formats.detect import IMAGES, format_by_content

TFDS_ID_KEY = 'file_name'  # tensorflow_datasets' image datasets: the source file's name


class MissingKey(ValueError):
  """The records hold no usable image feature; the message names what they hold."""


def _holds_image(value: passthrough.Values) -> bool:
  return (value.kind == passthrough.BYTES and len(value.values) == 1 and isinstance(value.values[0], bytes)
          and format_by_content(value.values[0][:1024]) == IMAGES)


def find_keys(samples: Sequence[Dict[str, passthrough.Values]], image_key: Optional[str], id_key: Optional[str],
              where: str) -> Tuple[Optional[str], Optional[str], List[str]]:
  """(image_key, id_key, what was found, for the log): the given keys, or the ones the samples show."""
  if not samples:
    return image_key, id_key, []
  said = []
  wanted = image_key or tf_example.IMAGE_KEY
  if not any(wanted in s for s in samples):
    present = sorted({key for s in samples for key in s})
    images = [key for key in present if all(key in s and _holds_image(s[key]) for s in samples)]
    if image_key is not None or len(images) != 1:
      why = (f'the bytes features {", ".join(images)} all hold images' if len(images) > 1
             else 'no bytes feature holds an image in them')
      raise MissingKey(f'no image feature {wanted!r} in the first {len(samples)} records of {where} (features: '
                      f'{", ".join(present) or "none"}; {why}): pass --image_key NAME')
    image_key = images[0]
    said.append(f'the image is feature {image_key!r} (no {wanted!r})')
  if id_key is None and not any(k in s for s in samples for k in (tf_example.ID_KEY, tf_example.FILENAME_KEY)) \
      and all(TFDS_ID_KEY in s for s in samples):
    id_key = TFDS_ID_KEY
    said.append(f'the id is feature {id_key!r} (tensorflow_datasets\' file name)')
  return image_key, id_key, said
