"""How to find the image, id and passthrough values inside container formats; fixed by the plan at launch."""
import dataclasses
from typing import Optional, Tuple

from transforms.read.formats import parquet_table, passthrough

COMPRESSIONS = ('auto', 'none', 'gzip')
MAX_INPUT_BYTES = 256 << 20  # --max_input_bytes: the largest image file, tar member or TFRecord record read
# --reads_in_flight: per reading thread (window.py); about latency x the rate the cores consume, 100 ms x 640/s
READS_IN_FLIGHT = 64
READ_BYTES_IN_FLIGHT = 8 << 20  # --read_bytes_in_flight: the bytes those reads may hold


class InputTooLarge(ValueError):
  """An input larger than --max_input_bytes; refused without reading it into memory."""

  def __init__(self, what: str, size: Optional[int], bound: int):
    size = 'more than its' if size is None else f'{size} bytes, more than the'  # None: read up to the bound
    super().__init__(f'{what} is {size} bound of {bound} bytes (--max_input_bytes); it was not read')


@dataclasses.dataclass(frozen=True)
class ReadSettings:
  image_key: Optional[str] = None  # tf.Example feature or tar member extension; None: the format's default
  id_key: Optional[str] = None  # tf.Example feature; None: the format's default
  compression: str = 'auto'  # of TFRecord files: auto (by a .gz extension), none or gzip
  columns: Tuple[passthrough.Column, ...] = ()
  max_input_bytes: int = MAX_INPUT_BYTES  # larger image files, tar members, TFRecord records are error rows
  reads_in_flight: int = READS_IN_FLIGHT  # 1: one read at a time, in the reading thread
  read_bytes_in_flight: int = READ_BYTES_IN_FLIGHT
  anonymous: bool = False  # gs:// without credentials (--no_auth)
  image_column: Optional[str] = None  # of Parquet tables (--image_column); None: the one binary or image struct
  id_column: Optional[str] = None  # of Parquet tables (--id_column); None: a column named id, if any
  table: Optional[parquet_table.TableColumns] = None  # a Parquet input's columns, as the plan resolved them
  allow_http: bool = False  # a URI table's http(s) locations are read (--allow_http)
