"""TF2 SavedModels: signatures with named outputs, or the model's __call__.

Outputs are named OUTPUT (searched in every signature, serving_default first),
SIGNATURE:OUTPUT, or __call__ (the single output of the model's own function,
features in TF-Hub's TF2 image models). Classes and embedding must come from
one function, so that --task both is one forward pass.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from transforms.infer.models import base, to_tflite

CALL = '__call__'
CLASSES_DEFAULTS = ('probabilities', 'logits')
EMBEDDING_DEFAULTS = ('feature_vector', 'embedding', 'features', CALL)


class _Function:
  """A signature or __call__: one image input, named outputs."""

  def __init__(self, name: str, fn, input_name: Optional[str], input_spec, outputs: Dict[str, object]):
    self.name, self.fn, self.input_name, self.input_spec, self.outputs = name, fn, input_name, input_spec, outputs

  def ref(self, output: str) -> str:
    return CALL if self.name == CALL else f'{self.name}:{output}'


def _functions(obj) -> List[_Function]:
  """Every function of the model that takes one image batch, serving_default first."""
  functions = []
  for name in sorted(obj.signatures, key=lambda n: (n != 'serving_default', n)):
    fn = obj.signatures[name]
    kwargs = fn.structured_input_signature[1]
    if len(kwargs) == 1 and isinstance(fn.structured_outputs, dict):
      (input_name, spec), = kwargs.items()
      functions.append(_Function(name, fn, input_name, spec, fn.structured_outputs))
  for concrete in getattr(getattr(obj, '__call__', None), 'concrete_functions', ()):
    args = concrete.structured_input_signature[0]
    if args and getattr(args[0], 'shape', None) is not None and args[0].shape.rank == 4:
      functions.append(_Function(CALL, obj.__call__, None, args[0], {CALL: concrete.structured_outputs}))
      break
  return functions


def _offers(function: _Function, names: Sequence[str]) -> Optional[str]:
  """The first of names this function gives, as OUTPUT, SIGNATURE:OUTPUT or __call__."""
  for name in names:
    signature, _, output = name.rpartition(':')
    if signature in ('', function.name) and output in function.outputs:
      return output
  return None


def _choose(functions: List[_Function], wanted: List[Tuple[str, Sequence[str], str]], path: str):
  """The first function giving every wanted output, and those outputs' keys."""
  for function in functions:
    keys = [_offers(function, names) for _, names, _ in wanted]
    if all(keys):
      return function, keys
  offered = [f.ref(o) for f in functions for o in f.outputs]
  for what, names, option in wanted:
    if not any(_offers(f, names) for f in functions):
      raise base.ModelError(f'{path}: no output for {what}: looked for {", ".join(names)} ({option}); '
                            f'the model offers {offered}')
  raise base.ModelError(f'{path}: no single function gives {" and ".join(n[0] for _, n, _ in wanted)} '
                        f'(needed for one forward pass); the model offers {offered}')


class SavedModel(base.ArrayModel):

  def __init__(self, path: str, spec: base.ModelSpec):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    try:
      obj = tf.saved_model.load(path)
    except Exception as e:  # a broken or unsupported SavedModel
      raise base.ModelError(f'{path}: not a usable SavedModel: {e}') from e
    functions = _functions(obj)
    if not functions:
      raise base.ModelError(f'{path}: no signature or __call__ takes one image batch [N, H, W, 3]')
    wanted = []
    if spec.wants_classes:
      names = (spec.classes_output,) if spec.classes_output else CLASSES_DEFAULTS
      wanted.append(('classification', names, '--classes_output'))
    if spec.wants_embedding:
      names = (spec.embedding_output,) if spec.embedding_output else EMBEDDING_DEFAULTS
      wanted.append(('an embedding', names, '--embedding_output'))
    function, self._keys = _choose(functions, wanted, path)
    shape, dtype = function.input_spec.shape, function.input_spec.dtype
    if shape[-1] not in (3, None) or dtype not in (tf.float32, tf.uint8):
      raise base.ModelError(f'{path}: {function.name} takes {dtype.name} {shape}, not images [N, H, W, 3]')
    self._obj, self._fn, self._function, self._tf = obj, function.fn, function, tf
    self._dtype = dtype
    size = base.input_size((shape[1], shape[2]), spec.image_size, path)
    if dtype == tf.uint8 and spec.input_range:
      raise base.ModelError(f'{path}: --input_range does not apply: the model takes uint8 pixels')
    dims = [int(function.outputs[k].shape[-1]) for k in self._keys]
    refs = [function.ref(k) for k in self._keys]
    self.info = base.ModelInfo(
        format='saved_model',
        input_size=size,
        input_range=(0.0, 255.0) if dtype == tf.uint8 else base.float_range(spec),
        num_classes=dims[0] if spec.wants_classes else None,
        embedding_dim=dims[-1] if spec.wants_embedding else None,
        description=f'TF2 SavedModel, using {function.name} (input {function.input_name or "images"} '
        f'{dtype.name} {shape})',
        input_size_fixed=shape[1] is not None and shape[2] is not None,
        classes_output=refs[0] if spec.wants_classes else None,
        embedding_output=refs[-1] if spec.wants_embedding else None,
        outputs=tuple(f.ref(o) for f in functions for o in f.outputs))
    self._lite = None
    if spec.tf_runtime == base.TFLITE_RUNTIME and function.input_name is not None:  # signatures: named outputs
      self._lite = to_tflite.try_convert(function.fn, obj, (path, function.name, size), spec.num_threads or 1,
                                         self._keys, path)
      self.info = to_tflite.described(self.info, self._lite)
    self._init_outputs(spec)

  def _raw(self, images: np.ndarray) -> List[np.ndarray]:
    if self._lite is not None:
      return self._lite(images if self._dtype == self._tf.uint8 else self.scale(images))
    batch = self._tf.constant(images if self._dtype == self._tf.uint8 else self.scale(images))
    if self._function.input_name is None:
      results = {CALL: self._fn(batch)}
    else:
      results = self._fn(**{self._function.input_name: batch})
    return [results[k].numpy() for k in self._keys]
