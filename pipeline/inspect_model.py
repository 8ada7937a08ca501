"""python -m pipeline.inspect_model MODEL [IMAGE]: what a model is and what it says, before a big job.

Prints the format, input size and value range, the outputs the model offers
and the ones the job would use, and for an image its top classes (named with
--labels_file) and embedding, computed exactly as the job computes them.
"""
import argparse
import dataclasses
import sys
from typing import List, Optional, Sequence

import numpy as np
from apache_beam.io.filesystems import FileSystems

from pipeline import command_line, model_options
from transforms import decode
from transforms import format as format_lib
from transforms.infer import labels as labels_lib
from transforms.infer import model_files, models  # models quiet TensorFlow's start-up notices


@dataclasses.dataclass(frozen=True)
class InspectConfig:
  model: models.ModelSpec
  labels: Optional[str]
  top_k: int
  image: Optional[str]
  resize_method: str
  any_task: bool  # no --task given: show whichever of both, classify, embed the model can do


def parse_inspect(argv: Sequence[str]) -> InspectConfig:
  """Options of `python -m pipeline.inspect_model MODEL [IMAGE]`: the job's model options; raises OptionsError."""
  parser = argparse.ArgumentParser(prog='python -m pipeline.inspect_model',
                                   description='Describe a model and show its top classes for an image.',
                                   formatter_class=command_line.DefaultsHelpFormatter)
  parser.add_argument('model', help='TF-Hub handle, local path or gs:// path of the model')
  parser.add_argument('image', nargs='?', default=None, help='an image file to classify and embed')
  model_options.add_model_arguments(parser, model_flag=False)
  model_options.add_resize_argument(parser)
  parser.set_defaults(task=None)
  o = parser.parse_args(argv)
  model_options.check_resize_method(o.resize_method)
  any_task = o.task is None
  o.task = o.task or models.BOTH
  return InspectConfig(model=model_options.model_spec(o), labels=o.labels_file, top_k=o.top_k, image=o.image,
                       resize_method=o.resize_method, any_task=any_task)


def _load(config: InspectConfig) -> models.ImageModel:
  """The model for the task asked, or without --task for the most the model can do."""
  if not config.any_task:
    return model_files.load(config.model)
  first_error = None
  for task in models.TASKS[::-1]:  # both, embed, classify
    try:
      return model_files.load(dataclasses.replace(config.model, task=task))
    except models.ModelError as e:
      first_error = first_error or e
  raise first_error


def _range(values) -> str:
  return '[' + ', '.join(f'{v:g}' for v in values) + ']'


def describe(model: models.ImageModel, location: str) -> List[str]:
  info = model.info
  height, width = info.input_size
  size = (f'{height}x{width} (fixed)' if info.input_size_fixed
          else f'any size; {height}x{width} used (--image_size, default {models.base.DEFAULT_IMAGE_SIZE})')
  lines = [
      f'model:        {location}',
      f'format:       {info.format}: {info.description}',
      f'input:        RGB {size}',
      f'value range:  pixels 0..255 -> {_range(info.input_range)}',
      f'outputs:      {", ".join(info.outputs)}',
  ]
  if info.num_classes is not None:
    lines.append(f'classes:      {info.num_classes}, from {info.classes_output} (--classes_output)')
  if info.embedding_dim is not None:
    lines.append(f'embedding:    {info.embedding_dim} values, from {info.embedding_output} (--embedding_output)')
  return lines


def predict_image(model: models.ImageModel, path: str, resize_method: str) -> models.Outputs:
  with FileSystems.open(path, compression_type='uncompressed') as f:
    pixels = decode.decode(f.read(), model.info.input_size, resize_method)
  return model.predict(pixels[np.newaxis])


def show_prediction(outputs: models.Outputs, image: str, top_k: int, labels: Optional[List[str]]) -> List[str]:
  lines = []
  if outputs.probabilities is not None:
    lines.append(f'top-{top_k} for {image}:')
    scores = outputs.probabilities[0]
    for rank, index in enumerate(format_lib.top_k(scores, top_k), 1):
      name = f'  {labels[index]}' if labels else ''
      lines.append(f'  {rank}. {scores[index]:.4f}  class {index}{name}')
  if outputs.embedding is not None:
    vector = outputs.embedding[0]
    lines.append(f'embedding of {image}: {vector.size} values, L2 norm {np.linalg.norm(vector):.4f}, '
                 f'first {", ".join(f"{v:.4f}" for v in vector[:4])}')
  return lines


def main(argv: Optional[List[str]] = None) -> int:
  try:
    config = parse_inspect(sys.argv[1:] if argv is None else argv)
    model = _load(config)
    labels = None
    if config.labels and model.info.num_classes is not None:
      labels = labels_lib.load_labels(config.labels, model.info.num_classes)
    lines = describe(model, config.model.location)
    if labels is not None:
      lines.append(f'labels:       {config.labels}, {len(labels)} names aligned to the classes')
    if config.image:
      lines += show_prediction(predict_image(model, config.image, config.resize_method), config.image,
                               config.top_k, labels)
  except (model_options.OptionsError, models.ModelError, decode.DecodeError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print('\n'.join(lines))
  return 0


if __name__ == '__main__':
  sys.exit(main())
