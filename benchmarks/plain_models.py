"""The models called plainly, as their formats offer them, and the rows written from them: shared by the
documentation-style baseline (c) and the peers (d, Ray Data; e, Spark), so that these differ in the framework
around the same calls only. Imports nothing from the project (the peers run it in virtualenvs of their own),
and imports a model's runtime only when that model is loaded.

TFLite: the interpreter with the libraries' default threads, set the input, invoke, read the output, one image at
a time as the file's batch of one requires. TF1 Hub: the `image_classification` signature, and for `both` also the
`image_feature_vector` signature (the network runs twice). Decoding: Pillow's full decode, RGB, and a bilinear
resize of the whole image to the model's 160x160.
"""
import io
import os
from typing import Dict, Sequence

import numpy as np
import pyarrow as pa

SIZE = 160  # both benchmark models take 160x160
TOP_K = 5
EMBEDDING_DIM = 512  # MobileNet V1 0.5's feature vector


def decode(data: bytes) -> np.ndarray:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  image = Image.open(io.BytesIO(data)).convert('RGB')
  return np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR))


class TFLite:
  """A quantized classifier: uint8 pixels in, dequantized softmax out."""

  def __init__(self, path: str):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    self.interpreter = Interpreter(model_path=path)
    self.interpreter.allocate_tensors()
    self._input, = self.interpreter.get_input_details()
    self._output, = self.interpreter.get_output_details()

  def one(self, image: np.ndarray) -> Dict[str, np.ndarray]:
    scale, zero_point = self._output['quantization']
    self.interpreter.set_tensor(self._input['index'], image[np.newaxis])
    self.interpreter.invoke()
    return {'probabilities': (self.interpreter.get_tensor(self._output['index'])[0].astype(np.float32) - zero_point)
                             * scale}

  def __call__(self, images: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    return {'probabilities': np.stack([self.one(image)['probabilities'] for image in images])}


class Hub:
  """A TF1 Hub module: floats in [0, 1] in, each signature the task needs called on the batch."""

  def __init__(self, path: str, task: str):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    self.module, self.task = hub.load(path), task

  def __call__(self, images: Sequence[np.ndarray]) -> Dict[str, np.ndarray]:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    pixels = tf.constant(np.stack(images).astype(np.float32) / 255.0)
    logits = self.module.signatures['image_classification'](images=pixels)['default'].numpy()
    outputs = {'probabilities': tf.nn.softmax(logits).numpy()}
    if self.task == 'both':
      outputs['embedding'] = self.module.signatures['image_feature_vector'](images=pixels)['default'].numpy()
    return outputs


def load(path: str, task: str):
  return TFLite(path) if path.endswith('.tflite') else Hub(path, task)


def read_labels(path: str) -> Sequence[str]:
  with open(path, encoding='utf-8') as f:
    return f.read().splitlines()


def row(path: str, outputs: Dict[str, np.ndarray], labels: Sequence[str]) -> dict:
  """One image's output row: id (file name without extension), source, top-k classes, labels and scores, and
  the embedding when there is one."""
  probabilities = outputs['probabilities']
  best = np.argsort(-probabilities)[:TOP_K]
  result = {'id': os.path.splitext(os.path.basename(path))[0], 'source': path, 'top_classes': best.tolist(),
            'top_labels': [labels[i] for i in best], 'top_scores': probabilities[best].tolist()}
  if 'embedding' in outputs:
    result['embedding'] = outputs['embedding']  # an array, as the job gives Arrow its vectors
  return result


def schema(task: str) -> pa.Schema:
  fields = [('id', pa.string()), ('source', pa.string()), ('top_classes', pa.list_(pa.int32())),
            ('top_labels', pa.list_(pa.string())), ('top_scores', pa.list_(pa.float32()))]
  if task == 'both':
    fields.append(('embedding', pa.list_(pa.float32(), EMBEDDING_DIM)))  # the job's type (docs/output.md)
  return pa.schema(fields)


def table(paths: Sequence[str], outputs: Dict[str, np.ndarray], labels: Sequence[str], task: str) -> pa.Table:
  """A batch's rows as an Arrow table of `schema(task)`."""
  rows = [row(path, {name: values[i] for name, values in outputs.items()}, labels) for i, path in enumerate(paths)]
  return pa.Table.from_pylist(rows, schema=schema(task))
