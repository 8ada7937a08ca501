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
the project is used, on purpose.
"""
import io
import os
import sys
from typing import Any, Dict, Iterable, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import apache_beam as beam  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pyarrow as pa  # pylint: disable=wrong-import-position
from apache_beam.io import fileio  # pylint: disable=wrong-import-position
from apache_beam.ml.inference.base import (  # pylint: disable=wrong-import-position
    KeyedModelHandler, ModelHandler, RunInference)
from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=wrong-import-position

SIZE = 160  # both models take 160x160
TOP_K = 5


class TFLiteHandler(ModelHandler[np.ndarray, Dict[str, np.ndarray], Any]):
  """A quantized classifier: uint8 pixels in, dequantized softmax out."""

  def __init__(self, path: str):
    super().__init__()
    self._path = path

  def load_model(self):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    interpreter = Interpreter(model_path=self._path)
    interpreter.allocate_tensors()
    return interpreter

  def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[Dict[str, np.ndarray]]:
    source, = model.get_input_details()
    target, = model.get_output_details()
    scale, zero_point = target['quantization']
    for image in batch:
      model.set_tensor(source['index'], image[np.newaxis])
      model.invoke()
      yield {'probabilities': (model.get_tensor(target['index'])[0].astype(np.float32) - zero_point) * scale}


class HubHandler(ModelHandler[np.ndarray, Dict[str, np.ndarray], Any]):
  """A TF1 Hub module: floats in [0, 1] in, each wanted signature called on the batch."""

  def __init__(self, path: str, task: str):
    super().__init__()
    self._path = path
    self._task = task

  def load_model(self):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    return hub.load(self._path)

  def run_inference(self, batch: Sequence[np.ndarray], model, inference_args=None) -> Iterable[Dict[str, np.ndarray]]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    images = tf.constant(np.stack(batch).astype(np.float32) / 255.0)
    logits = model.signatures['image_classification'](images=images)['default'].numpy()
    outputs = {'probabilities': tf.nn.softmax(logits).numpy()}
    if self._task == 'both':
      outputs['embedding'] = model.signatures['image_feature_vector'](images=images)['default'].numpy()
    for i in range(len(batch)):
      yield {name: values[i] for name, values in outputs.items()}


def preprocess(readable) -> tuple:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  image = Image.open(io.BytesIO(readable.read())).convert('RGB')
  return readable.metadata.path, np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def to_row(keyed, labels: Sequence[str]) -> dict:
  path, outputs = keyed
  probabilities = outputs['probabilities']
  best = np.argsort(-probabilities)[:TOP_K]
  row = {'id': os.path.splitext(os.path.basename(path))[0], 'source': path, 'top_classes': best.tolist(),
         'top_labels': [labels[i] for i in best], 'top_scores': probabilities[best].tolist()}
  if 'embedding' in outputs:
    row['embedding'] = outputs['embedding'].tolist()
  return row


def schema(task: str) -> pa.Schema:
  fields = [('id', pa.string()), ('source', pa.string()), ('top_classes', pa.list_(pa.int32())),
            ('top_labels', pa.list_(pa.string())), ('top_scores', pa.list_(pa.float32()))]
  if task == 'both':
    fields.append(('embedding', pa.list_(pa.float32())))
  return pa.schema(fields)


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
  with open(args.labels_file, encoding='utf-8') as f:
    labels = f.read().splitlines()
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
         | beam.io.WriteToParquet(os.path.join(args.output, 'predictions', 'part'), schema(args.task),
                                  file_name_suffix='.parquet'))


if __name__ == '__main__':
  run(sys.argv[1:])
