"""How to find the image, id and passthrough values inside container formats; fixed by the plan at launch."""
import dataclasses
from typing import Optional, Tuple

from transforms.read.formats import passthrough

COMPRESSIONS = ('auto', 'none', 'gzip')
MAX_INPUT_BYTES = 256 << 20  # --max_input_bytes: the largest image file, tar member or TFRecord record read


class InputTooLarge(ValueError):
  """An input larger than --max_input_bytes; refused without reading it into memory."""

  def __init__(self, what: str, size: int, bound: int):
    super().__init__(f'{what} is {size} bytes, more than the bound of {bound} bytes (--max_input_bytes); '
                     'it was not read')


@dataclasses.dataclass(frozen=True)
class ReadSettings:
  image_key: Optional[str] = None  # tf.Example feature or tar member extension; None: the format's default
  id_key: Optional[str] = None  # tf.Example feature; None: the format's default
  compression: str = 'auto'  # of TFRecord files: auto (by a .gz extension), none or gzip
  columns: Tuple[passthrough.Column, ...] = ()
  max_input_bytes: int = MAX_INPUT_BYTES  # larger image files, tar members, TFRecord records are error rows
