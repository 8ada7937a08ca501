"""TF1 Hub-format modules (hub.Module era), loaded without Keras.

Beam's TFModelHandler goes through Keras, which under TF 2.16+ refuses legacy
SavedModels. tensorflow_hub.load reads them as a pruned graph instead, and
pruning the graph once with both fetches gives labels and embeddings from one
forward pass.
"""
from typing import List, Optional

import numpy as np

from transforms.models import base

CLASSIFICATION_SIGNATURES = ('image_classification',)  # 'default' is features in feature modules
FEATURE_SIGNATURES = ('image_feature_vector',)
# TF-Hub's image module convention: RGB floats in [0, 1].
HUB_IMAGE_RANGE = (0.0, 1.0)


def _signature(signatures, names, wanted: str, path: str):
  for name in names:
    if name in signatures:
      return signatures[name]
  raise base.ModelError(
      f'{path}: no signature for {wanted}; looked for {list(names)}, '
      f'the module has {sorted(signatures)}')


class TF1HubModel(base.ImageModel):

  def __init__(self, path: str, spec: base.ModelSpec):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    module = hub.load(path)  # picks the tag set of the inference graph
    wanted = []
    if spec.wants_classes:
      wanted.append(_signature(module.signatures, CLASSIFICATION_SIGNATURES, 'classification', path))
    if spec.wants_embedding:
      wanted.append(_signature(module.signatures, FEATURE_SIGNATURES, 'image features', path))
    images = wanted[0].inputs[0]
    if any(sig.inputs[0].name != images.name for sig in wanted):
      raise base.ModelError(f'{path}: the signatures do not share one image input')
    _, height, width, channels = images.shape
    if channels != 3 or height is None or width is None:
      raise base.ModelError(f'{path}: expected images [N, H, W, 3], got {images.shape}')
    fetches: List = [sig.outputs[0] for sig in wanted]
    self._fn = module.prune(feeds=[images.name], fetches=[t.name for t in fetches])
    self._module = module  # keeps the variables alive
    self._tf = tf
    dims = [int(t.shape[-1]) for t in fetches]
    self.info = base.ModelInfo(
        format='tf1_hub',
        input_size=(int(height), int(width)),
        input_range=HUB_IMAGE_RANGE,
        num_classes=dims[0] if spec.wants_classes else None,
        embedding_dim=dims[-1] if spec.wants_embedding else None,
        description=f'TF1 Hub module, signatures {sorted(module.signatures)}')
    self._wants_classes = spec.wants_classes
    self._wants_embedding = spec.wants_embedding

  def predict(self, images: np.ndarray) -> base.Outputs:
    results = self._fn(self._tf.constant(self.scale(images)))
    arrays = [r.numpy() for r in results]
    probabilities: Optional[np.ndarray] = None
    if self._wants_classes:
      probabilities = base.softmax(arrays[0])
    embedding = arrays[-1] if self._wants_embedding else None
    return base.Outputs(probabilities, embedding)
