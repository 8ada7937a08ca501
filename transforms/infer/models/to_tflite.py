"""A loaded TensorFlow function converted to a float TFLite model and run with LiteRT (XNNPACK).

Why: the same network costs less CPU per image under LiteRT's XNNPACK kernels
than under TensorFlow's (docs/benchmarks.md, "The TensorFlow path"). The
conversion keeps float weights (no quantization), so outputs agree with
TensorFlow's to float rounding. It is made once per process and function; a
function the converter refuses leaves the model on TensorFlow, with a warning.
"""
import dataclasses
import logging
import threading
from typing import Dict, List, Optional, Sequence

import numpy as np

_converted: Dict[tuple, bytes] = {}  # (key) -> the converted model, for this process
_lock = threading.Lock()


def convert_function(fn, trackable, key: tuple) -> bytes:
  """The float TFLite flatbuffer of a concrete function (variables frozen into constants)."""
  with _lock:
    if key not in _converted:
      import tensorflow as tf  # pylint: disable=import-outside-toplevel
      converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], trackable)
      _converted[key] = converter.convert()
    return _converted[key]


class LiteFunction:
  """Runs a converted function on float32 batches; outputs in the order of `outputs` (signature output names)."""

  def __init__(self, content: bytes, threads: int, outputs: Sequence[str]):
    from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
    self._interpreter = litert.Interpreter(model_content=content, num_threads=threads)
    self._runner = self._interpreter.get_signature_runner()
    (self._input,) = self._runner.get_input_details()
    self._outputs = list(outputs)
    missing = set(self._outputs) - set(self._runner.get_output_details())
    if missing:
      raise ValueError(f'converted model lacks outputs {sorted(missing)}')
    self._lock = threading.Lock()  # one invoke at a time; RunInference shares the model between threads

  def __call__(self, batch: np.ndarray) -> List[np.ndarray]:
    with self._lock:
      results = self._runner(**{self._input: batch})
      return [np.array(results[name]) for name in self._outputs]


def try_convert(fn, trackable, key: tuple, threads: int, outputs: Sequence[str], path: str) -> Optional[LiteFunction]:
  """The function on LiteRT, or None (TensorFlow keeps it) when conversion or loading fails."""
  try:
    return LiteFunction(convert_function(fn, trackable, key), threads, outputs)
  except Exception as e:  # pylint: disable=broad-except  # any converter failure: TF still runs the model
    logging.warning('%s: float TFLite conversion failed, running on TensorFlow: %s', path, str(e).splitlines()[0])
    return None


def described(info, lite: Optional[LiteFunction]):
  """The model's info, saying what runs it (pipeline.inspect_model shows it)."""
  runs = 'converted to float TFLite, run by LiteRT' if lite else 'run by TensorFlow (the conversion failed)'
  return dataclasses.replace(info, description=f'{info.description}; {runs}')
