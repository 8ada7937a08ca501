"""(c) The baseline: the job written the way Beam's documentation shows it.

`python -m benchmarks.baseline --input GLOB --output DIR --model MODEL --task classify|both --labels_file FILE
[Beam options]`

fileio.MatchFiles + ReadMatches, a full Pillow decode and resize in a Map,
RunInference with Beam's default batching and a plain ModelHandler that calls
the model as its format offers it (TFLite: the interpreter, one invoke per
image as the file's batch of one requires; TF1 Hub: each signature the task
needs, `image_classification` and `image_feature_vector`), top-k and labels
in a Map, WriteToParquet. Same model files, same output columns, same runner
options as the job; thread settings are the libraries' defaults. Nothing from
the job is used, on purpose: the decode, the model calls and the rows are
benchmarks/plain_models.py, which the peers (Ray Data, Spark) share.
"""
import os
import sys
from typing import Any, Dict, Iterable, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import apache_beam as beam  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from apache_beam.io import fileio  # pylint: disable=wrong-import-position
from apache_beam.ml.inference.base import (  # pylint: disable=wrong-import-position
    KeyedModelHandler, ModelHandler, RunInference)
from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=wrong-import-position

from benchmarks import plain_models  # pylint: disable=wrong-import-position


class TFLiteHandler(ModelHandler[np.ndarray, Dict[str, np.ndarray], Any]):
  """A quantized classifier: uint8 pixels in, dequantized softmax out, one invoke per image."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def load_model(self):
    return plain_models.TFLite(self._path)

  def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[Dict[str, np.ndarray]]:
    for image in batch:
      yield model.one(image)


class HubHandler(ModelHandler[np.ndarray, Dict[str, np.ndarray], Any]):
  """A TF1 Hub module: floats in [0, 1] in, each wanted signature called on the batch."""

  def __init__(self, path: str, task: str):
    super().__init__()
    self._path = path
    self._task = task

  def load_model(self):
    return plain_models.Hub(self._path, self._task)

  def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[Dict[str, np.ndarray]]:
    outputs = model(batch)
    for i in range(len(batch)):
      yield {name: values[i] for name, values in outputs.items()}


def preprocess(readable) -> tuple:
  return readable.metadata.path, plain_models.decode(readable.read())


def to_row(keyed, labels: Sequence[str]) -> dict:
  path, outputs = keyed
  return plain_models.row(path, outputs, labels)


class BaselineOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument('--input', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--model', required=True)
    parser.add_argument('--task', default='classify')
    parser.add_argument('--labels_file', required=True)
    parser.add_argument('--reshuffle', action='store_true',
                        help='not in the documentation: spread the matched files over the workers (see docs/benchmarks.md)')


def run(argv: Optional[Sequence[str]] = None) -> None:
  options = PipelineOptions(argv)
  args = options.view_as(BaselineOptions)
  labels = plain_models.read_labels(args.labels_file)
  handler = TFLiteHandler(args.model) if args.model.endswith('.tflite') else HubHandler(args.model, args.task)
  with beam.Pipeline(options=options) as p:
    matched = p | fileio.MatchFiles(args.input)
    if args.reshuffle:
      matched = matched | beam.Reshuffle()
    _ = (matched
         | fileio.ReadMatches()
         | 'Preprocess' >> beam.Map(preprocess)
         | RunInference(KeyedModelHandler(handler))
         | 'Postprocess' >> beam.Map(to_row, labels)
         | beam.io.WriteToParquet(os.path.join(args.output, 'predictions', 'part'), plain_models.schema(args.task),
                                  file_name_suffix='.parquet'))


if __name__ == '__main__':
  run(sys.argv[1:])
