"""Read stage: inputs -> EncodedImage(ref, bytes), plus read errors, whatever the input format.

Each input is read by the reader of its format, as the plan (plan.py) fixed
it: image files (image_files.py), TFRecord shards of tf.Example
(tfrecord_shards.py) or WebDataset tar shards (tar_shards.py).
"""
import apache_beam as beam

from transforms import elements
from transforms.read import image_files, retry, tar_shards, tfrecord_shards
from transforms.read.formats.detect import FORMATS, TAR, TFRECORD
from transforms.read.plan import InputPlan


class ReadImages(beam.PTransform):
  """Every input by the reader of its format; returns {'images': ..., 'errors': ..., 'unread': ...}.

  'unread': the locations (str) storage would not give after retries (retry.py); the job tallies them.
  """

  def __init__(self, input_plan: InputPlan):
    super().__init__()
    self._plan = input_plan

  def _reader(self, fmt: str, patterns):
    if fmt == TFRECORD:
      return tfrecord_shards.ReadTFRecords(patterns, self._plan.settings)
    if fmt == TAR:
      return tar_shards.ReadTarShards(patterns, self._plan.settings)
    return image_files.ReadImageFiles(patterns, self._plan.settings.max_input_bytes)

  def expand(self, pbegin):
    images, errors, unread = [], [], []
    for fmt in FORMATS:
      patterns = [pattern for pattern, f in self._plan.inputs if f == fmt]
      if patterns:
        read = pbegin | f'Read_{fmt}' >> self._reader(fmt, patterns)
        images.append(read['images'])
        errors.append(read[elements.ERRORS_TAG])
        unread.append(read[retry.UNREAD_TAG])
    return {
        'images': tuple(images) | 'Images' >> beam.Flatten(),
        elements.ERRORS_TAG: tuple(errors) | 'Errors' >> beam.Flatten(),
        retry.UNREAD_TAG: tuple(unread) | 'Unread' >> beam.Flatten(),
    }
