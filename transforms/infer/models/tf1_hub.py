"""TF1 Hub-format modules (hub.Module era), loaded without Keras.

Beam's TFModelHandler goes through Keras, which under TF 2.16+ refuses legacy
SavedModels. tensorflow_hub.load reads them as a graph instead; pruning that
graph once with every fetch the task needs gives labels and embeddings from
one forward pass.

What the module itself says: the signatures' input spec gives the image size
([N, 160, 160, 3]); tfhub_module.pb holds only the format version and the
modules carry no attached messages, so nothing records the value range: it is
TF-Hub's documented image convention, [0, 1] (base.HUB_IMAGE_RANGE), unless
--input_range says otherwise.
"""
from typing import List, Tuple

import numpy as np

from transforms.infer.models import base, to_tflite

# Outputs are named SIGNATURE[:OUTPUT]; OUTPUT defaults to 'default'.
CLASSES_DEFAULT = 'image_classification'  # logits; the 'default' signature is features in feature modules
EMBEDDING_DEFAULT = 'image_feature_vector'


def _tensor(signatures, name: str, wanted: str, option: str, path: str) -> Tuple[str, object]:
  """The output tensor named SIGNATURE[:OUTPUT] and its signature."""
  signature, _, output = name.partition(':')
  output = output or 'default'
  if signature not in signatures:
    raise base.ModelError(f'{path}: no signature for {wanted}: looked for {signature!r} ({option}), '
                          f'the module has {sorted(signatures)}')
  outputs = signatures[signature].structured_outputs
  if output not in outputs:
    raise base.ModelError(f'{path}: signature {signature!r} has no output {output!r} ({option}); '
                          f'it has {sorted(outputs)}')
  return signature, outputs[output]


class TF1HubModel(base.ArrayModel):

  def __init__(self, path: str, spec: base.ModelSpec):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
    module = hub.load(path)  # picks the tag set of the inference graph
    signatures = module.signatures
    names: List[str] = []
    if spec.wants_classes:
      names.append(spec.classes_output or CLASSES_DEFAULT)
    if spec.wants_embedding:
      names.append(spec.embedding_output or EMBEDDING_DEFAULT)
    options = ['--classes_output'] * spec.wants_classes + ['--embedding_output'] * spec.wants_embedding
    wanted = ['classification'] * spec.wants_classes + ['image features'] * spec.wants_embedding
    chosen = [_tensor(signatures, n, w, o, path) for n, w, o in zip(names, wanted, options)]
    inputs = {name: signatures[signature].inputs[0] for name, (signature, _) in zip(names, chosen)}
    images = next(iter(inputs.values()))
    if any(t.name != images.name for t in inputs.values()):
      raise base.ModelError(f'{path}: {" and ".join(names)} do not share one image input')
    _, height, width, channels = images.shape
    if channels != 3:
      raise base.ModelError(f'{path}: expected images [N, H, W, 3], got {images.shape}')
    fetches = [tensor for _, tensor in chosen]
    # With its input signature declared, a call binds the batch at once; without, TF first tries the structured
    # signature and formats the whole batch into the TypeError it then catches (about 5 ms per 64 images).
    self._fn = module.prune(feeds=[images.name], fetches=[t.name for t in fetches],
                            input_signature=((tf.TensorSpec(images.shape, images.dtype),), {}))
    self._module = module  # keeps the variables alive
    self._tf = tf
    dims = [int(t.shape[-1]) for t in fetches]
    size = base.input_size((height, width), spec.image_size, path)
    self.info = base.ModelInfo(
        format='tf1_hub',
        input_size=size,
        input_range=base.float_range(spec),
        num_classes=dims[0] if spec.wants_classes else None,
        embedding_dim=dims[-1] if spec.wants_embedding else None,
        description=f'TF1 Hub module, signatures {sorted(signatures)}, input {images.name} {images.dtype.name}',
        input_size_fixed=height is not None and width is not None,
        classes_output=names[0] if spec.wants_classes else None,
        embedding_output=names[-1] if spec.wants_embedding else None,
        outputs=tuple(f'{s}:{o}' for s in sorted(signatures) for o in sorted(signatures[s].structured_outputs)))
    self._lite = None
    if spec.tf_runtime == base.TFLITE_RUNTIME:
      self._lite = to_tflite.try_convert(self._fn, module, (path, tuple(names), size), spec.num_threads or 1,
                                         [f'output_{i}' for i in range(len(fetches))], path)
      self.info = to_tflite.described(self.info, self._lite)
    self._init_outputs(spec)

  def _raw(self, images: np.ndarray) -> List[np.ndarray]:
    if self._lite is not None:
      return self._lite(self.scale(images))
    return [r.numpy() for r in self._fn(self._tf.constant(self.scale(images)))]
