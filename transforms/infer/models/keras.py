"""Keras v3 (.keras) files: users' own and fine-tuned models.

Outputs are named by model output or by layer, so an embedding can be any
inner layer: by default it is what the classes layer reads (the pooled
features under a fine-tuned head). A sub-model with every wanted output gives
them all from one forward pass.
"""
from typing import List

import numpy as np

from transforms.infer.models import base

CLASSES_DEFAULTS = ('probabilities', 'logits', 'classes', 'predictions')
EMBEDDING_DEFAULTS = ('feature_vector', 'embedding', 'features')


def _named(model, name: str, option: str, path: str):
  if name in model.output_names:
    return model.outputs[model.output_names.index(name)]
  try:
    return model.get_layer(name).output
  except ValueError as e:
    raise base.ModelError(f'{path}: no output or layer named {name!r} ({option}); outputs {model.output_names}, '
                          f'layers {[layer.name for layer in model.layers]}') from e


def _default(model, names, what: str, option: str, path: str):
  for name in names:
    if name in model.output_names:
      return name, _named(model, name, option, path)
  raise base.ModelError(f'{path}: no output for {what}: the model has outputs {model.output_names}, none '
                        f'named {" or ".join(names)}; choose one with {option}')


class KerasModel(base.ArrayModel):

  def __init__(self, path: str, spec: base.ModelSpec):
    import keras  # pylint: disable=import-outside-toplevel
    try:
      model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # bad archives, unknown custom layers
      raise base.ModelError(f'{path}: Keras cannot load it: {e}') from e
    if len(model.inputs) != 1:
      raise base.ModelError(f'{path}: expected one image input, the model has {len(model.inputs)}')
    shape, dtype = tuple(model.inputs[0].shape), str(model.inputs[0].dtype)
    if len(shape) != 4 or shape[-1] not in (3, None) or dtype not in ('float32', 'uint8'):
      raise base.ModelError(f'{path}: the model takes {dtype} {shape}, not images [N, H, W, 3]')
    if dtype == 'uint8' and spec.input_range:
      raise base.ModelError(f'{path}: --input_range does not apply: the model takes uint8 pixels')
    names, tensors = [], []
    if spec.wants_classes:
      if spec.classes_output:
        name, tensor = spec.classes_output, _named(model, spec.classes_output, '--classes_output', path)
      elif len(model.outputs) == 1:
        name, tensor = model.output_names[0], model.outputs[0]
      else:
        name, tensor = _default(model, CLASSES_DEFAULTS, 'classification', '--classes_output', path)
      names.append(name)
      tensors.append(tensor)
    if spec.wants_embedding:
      if spec.embedding_output:
        name, tensor = spec.embedding_output, _named(model, spec.embedding_output, '--embedding_output', path)
      elif any(n in model.output_names for n in EMBEDDING_DEFAULTS) or len(model.outputs) != 1:
        name, tensor = _default(model, EMBEDDING_DEFAULTS, 'an embedding', '--embedding_output', path)
      else:  # a classifier: the features its last layer reads
        head = model.outputs[0]._keras_history.operation  # pylint: disable=protected-access
        name, tensor = head.input._keras_history.operation.name, head.input  # pylint: disable=protected-access
      names.append(name)
      tensors.append(tensor)
    self._model = keras.Model(model.inputs, tensors)
    self._uint8 = dtype == 'uint8'
    dims = [int(np.prod(t.shape[1:])) for t in tensors]
    self.info = base.ModelInfo(
        format='keras',
        input_size=base.input_size(shape[1:3], spec.image_size, path),
        input_range=(0.0, 255.0) if self._uint8 else base.float_range(spec),
        num_classes=dims[0] if spec.wants_classes else None,
        embedding_dim=dims[-1] if spec.wants_embedding else None,
        description=f'Keras model {model.name!r}, {len(model.layers)} layers, input {dtype} {shape}',
        input_size_fixed=shape[1] is not None and shape[2] is not None,
        classes_output=names[0] if spec.wants_classes else None,
        embedding_output=names[-1] if spec.wants_embedding else None,
        outputs=tuple(model.output_names) + tuple(
            layer.name for layer in model.layers
            if layer.name not in model.output_names and not isinstance(layer, keras.layers.InputLayer)))
    self._init_outputs(spec)

  def _raw(self, images: np.ndarray) -> List[np.ndarray]:
    results = self._model.predict_on_batch(images if self._uint8 else self.scale(images))
    return list(results) if isinstance(results, (list, tuple)) else [results]
