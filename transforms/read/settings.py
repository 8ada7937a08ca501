"""How to find the image, id and passthrough values inside container formats; fixed by the plan at launch."""
import dataclasses
from typing import Optional, Tuple

from transforms.read.formats import passthrough

COMPRESSIONS = ('auto', 'none', 'gzip')


@dataclasses.dataclass(frozen=True)
class ReadSettings:
  image_key: Optional[str] = None  # tf.Example feature or tar member extension; None: the format's default
  id_key: Optional[str] = None  # tf.Example feature; None: the format's default
  compression: str = 'auto'  # of TFRecord files: auto (by a .gz extension), none or gzip
  columns: Tuple[passthrough.Column, ...] = ()
