"""Counts a backend's forward passes from the test side: --task both must cost one forward pass, not two.

Each backend runs its network through one framework call; these wrap that call
on a loaded model, so the production interface carries no test hook.
"""
from typing import Callable, Tuple

from transforms.infer.models import keras, tflite


class Counter:
  def __init__(self):
    self.calls = 0

  def wrap(self, fn: Callable) -> Callable:
    def counted(*args, **kwargs):
      self.calls += 1
      return fn(*args, **kwargs)
    return counted


def forward_call(model) -> Tuple[object, str]:
  """(object, attribute): the call that runs the model's network once."""
  # pylint: disable=protected-access
  if isinstance(model, tflite.TFLiteModel):
    return model._interpreter, 'invoke'
  if isinstance(model, keras.KerasModel):
    return model._model, 'predict_on_batch'
  return model, '_fn'  # TF1 Hub and SavedModel: the pruned or signature function


def count(counter: Counter, monkeypatch, model) -> Counter:
  target, name = forward_call(model)
  monkeypatch.setattr(target, name, counter.wrap(getattr(target, name)))
  return counter


def count_forward(monkeypatch, model) -> Counter:
  """Counts the model's forward passes from now on."""
  return count(Counter(), monkeypatch, model)
