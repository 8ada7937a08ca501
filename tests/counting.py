"""Counts calls to a backend's forward function: --task both must cost one forward pass, not two."""
from typing import Callable


class Counter:
  def __init__(self):
    self.calls = 0

  def wrap(self, fn: Callable) -> Callable:
    def counted(*args, **kwargs):
      self.calls += 1
      return fn(*args, **kwargs)
    return counted


def count_forward(monkeypatch, model) -> Counter:
  """Counts model._forward calls from now on."""
  counter = Counter()
  monkeypatch.setattr(model, '_forward', counter.wrap(model._forward))  # pylint: disable=protected-access
  return counter
