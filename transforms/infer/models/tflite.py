"""TFLite models, quantized or float, run by LiteRT with its default XNNPACK delegate.

Quantized models declare their input mapping: pixels are fed as the uint8
values they are, and the input quantization (scale 1/128, zero point 128 for
MobileNet) says which real range that is. Outputs are dequantized once per
batch. Embeddings come from an inner tensor (by default the output of the last
global pooling, MobileNet's MobilenetV1/Logits/AvgPool_1a/AvgPool), which the
model is rewritten to expose as an extra output: the delegate may otherwise
never write inner tensors to memory.

Batching: the official MobileNet files bake a batch of 1 into a Reshape
([1, 1001]). Rewriting that constant to -1 and resizing the input to the batch
was measured against invoking a batch-1 interpreter once per image, side by
side in one process (32-image batches, XNNPACK): batched / per-image time was
0.98-1.03 with 1 thread and 0.91-1.00 with 2, i.e. no gain, while the rewrite
would have to guess which Reshape carries the batch. So models with a fixed
batch run chunk by chunk (image by image for batch 1), with Python work per
chunk kept to copying in and out; models with a dynamic batch run a whole
batch per invoke.
"""
import os
import threading
from typing import Dict, List, Optional

import numpy as np

from transforms.infer.models import base

POOLING_OPS = ('AVERAGE_POOL_2D', 'MEAN')  # the default embedding: output of the last global pooling
SHAPE_OPS = ('RESHAPE', 'SQUEEZE', 'QUANTIZE', 'DEQUANTIZE')  # looked through to find what made an output


class _Graph:
  """The main subgraph of a .tflite file, through LiteRT's own FlatBuffer schema."""

  def __init__(self, content: bytes, path: str):
    from ai_edge_litert import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
    self._schema = schema
    try:
      self.model = schema.ModelT.InitFromPackedBuf(content, 0)
      self.subgraph = self.model.subgraphs[0]
    except Exception as e:  # pylint: disable=broad-except
      raise base.ModelError(f'{path}: not a usable TFLite model: {e}') from e
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith('_')}
    self.names = [t.name.decode('utf-8') for t in self.subgraph.tensors]
    # Converted TF2 models name their outputs in a signature ('probabilities' for 'StatefulPartitionedCall:2').
    self.aliases = {m.name.decode('utf-8'): int(m.tensorIndex)
                    for signature in (self.model.signatureDefs or []) for m in (signature.outputs or [])}
    self.producers: Dict[int, tuple] = {}  # tensor -> (op name, its input tensors), in execution order
    for op in self.subgraph.operators:
      code = self.model.operatorCodes[op.opcodeIndex]
      name = op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), 'CUSTOM')
      for out in op.outputs:
        self.producers[int(out)] = (name, [int(i) for i in op.inputs])

  @property
  def outputs(self) -> List[int]:
    return [int(i) for i in self.subgraph.outputs]

  def find(self, name: str, option: str, path: str) -> int:
    if name in self.aliases:
      return self.aliases[name]
    if name not in self.names:
      produced = [self.names[t] for t in self.producers]
      raise base.ModelError(f'{path}: no tensor named {name!r} ({option}); the model computes {produced}')
    return self.names.index(name)

  def name(self, tensor: int) -> str:
    """How options name a tensor: its signature name if it has one."""
    return next((alias for alias, t in self.aliases.items() if t == tensor), self.names[tensor])

  def made_by(self, tensor: int) -> Optional[str]:
    """The op that computed a tensor, looking through reshapes and (de)quantization."""
    while tensor in self.producers:
      op, inputs = self.producers[tensor]
      if op not in SHAPE_OPS:
        return op
      tensor = inputs[0]
    return None

  def last_pooling(self) -> Optional[int]:
    pooled = [t for t, (op, _) in self.producers.items() if op in POOLING_OPS]
    return pooled[-1] if pooled else None

  def with_outputs(self, tensors: List[int]) -> bytes:
    """The model, re-serialized with extra subgraph outputs."""
    import flatbuffers  # pylint: disable=import-outside-toplevel
    self.subgraph.outputs = self.outputs + [t for t in tensors if t not in self.outputs]
    builder = flatbuffers.Builder(0)
    builder.Finish(self.model.Pack(builder), file_identifier=b'TFL3')
    return bytes(builder.Output())


class TFLiteModel(base.ArrayModel):

  def __init__(self, path: str, spec: base.ModelSpec):
    from ai_edge_litert import interpreter as litert  # pylint: disable=import-outside-toplevel
    with open(path, 'rb') as f:
      content = f.read()
    graph = _Graph(content, path)
    wanted = []
    if spec.wants_classes:
      wanted.append(self._classes_tensor(graph, spec, path))
    if spec.wants_embedding:
      embedding = (graph.find(spec.embedding_output, '--embedding_output', path) if spec.embedding_output
                   else graph.last_pooling())
      if embedding is None:
        raise base.ModelError(f'{path}: no global pooling to take embeddings from; name a tensor with '
                              '--embedding_output')
      wanted.append(embedding)
    if any(t not in graph.outputs for t in wanted):
      content = graph.with_outputs(wanted)
    threads = spec.num_threads or os.cpu_count() or 1
    try:
      self._interpreter = litert.Interpreter(model_content=content, num_threads=threads)
    except ValueError as e:
      raise base.ModelError(f'{path}: LiteRT cannot load it: {e}') from e
    inputs = self._interpreter.get_input_details()
    if len(inputs) != 1:
      raise base.ModelError(f'{path}: expected one image input, the model has {len(inputs)}')
    details = inputs[0]
    batch, height, width, channels = (int(d) for d in details['shape_signature'])
    if channels != 3:
      raise base.ModelError(f'{path}: expected images [N, H, W, 3], got {details["shape_signature"]}')
    size = base.input_size((None if height < 0 else height, None if width < 0 else width), spec.image_size, path)
    self._input = details['index']
    self._dtype = details['dtype']
    input_range = self._input_range(details, spec, path)
    self._dynamic_batch = batch < 0
    self._batch = 1 if self._dynamic_batch else int(batch)
    if self._dynamic_batch or height < 0 or width < 0:
      self._interpreter.resize_tensor_input(self._input, [self._batch, size[0], size[1], 3], strict=True)
    self._interpreter.allocate_tensors()
    self._lock = threading.Lock()
    self._outputs = wanted
    outputs = {d['index']: d for d in self._interpreter.get_output_details()}  # wanted ones are outputs now
    self._quantization = [outputs[t]['quantization'] for t in wanted]
    self._wants_classes, self._wants_embedding = spec.wants_classes, spec.wants_embedding
    self._logits = spec.wants_classes and graph.made_by(wanted[0]) != 'SOFTMAX'
    dims = [int(np.prod(outputs[t]['shape'][1:])) for t in wanted]
    ops = [op['op_name'] for op in self._interpreter._get_ops_details()]  # pylint: disable=protected-access
    quant = details['quantization']
    self.info = base.ModelInfo(
        format='tflite',
        input_size=size,
        input_range=input_range,
        num_classes=dims[0] if spec.wants_classes else None,
        embedding_dim=dims[-1] if spec.wants_embedding else None,
        description=(f'TFLite, input {details["name"]!r} {np.dtype(self._dtype).name} {[batch, height, width, channels]}'
                     + (f' quantized (scale {quant[0]:g}, zero point {quant[1]})' if quant[0] else '')
                     + f'; LiteRT, {threads} threads, {ops.count("DELEGATE")} XNNPACK partitions, '
                     f'{"dynamic batch" if self._dynamic_batch else f"batch fixed at {self._batch}"}'),
        input_size_fixed=height > 0 and width > 0,
        classes_output=graph.name(wanted[0]) if spec.wants_classes else None,
        embedding_output=graph.name(wanted[-1]) if spec.wants_embedding else None,
        outputs=tuple(graph.name(t) for t in graph.outputs)
        + tuple(graph.name(t) for t in [graph.last_pooling()] if t is not None and t not in graph.outputs))

  @staticmethod
  def _classes_tensor(graph: _Graph, spec: base.ModelSpec, path: str) -> int:
    if spec.classes_output:
      return graph.find(spec.classes_output, '--classes_output', path)
    if len(graph.outputs) == 1:
      return graph.outputs[0]
    softmax = [t for t in graph.outputs if graph.made_by(t) == 'SOFTMAX']
    if len(softmax) == 1:
      return softmax[0]
    raise base.ModelError(f'{path}: several outputs {[graph.name(t) for t in graph.outputs]}; choose the '
                          'classes with --classes_output')

  def _input_range(self, details, spec: base.ModelSpec, path: str):
    """uint8 inputs: the real range the quantization maps pixels 0..255 to; float inputs: --input_range."""
    if self._dtype == np.float32:
      return base.float_range(spec)
    if self._dtype != np.uint8:
      raise base.ModelError(f'{path}: {np.dtype(self._dtype).name} inputs are not supported (uint8 and float32 are)')
    if spec.input_range:
      raise base.ModelError(f'{path}: --input_range does not apply: the model takes uint8 pixels and its '
                            'input quantization declares their range')
    scale, zero_point = details['quantization']
    if not scale:
      return (0.0, 255.0)
    return ((0 - zero_point) * scale, (255 - zero_point) * scale)

  def _resize(self, batch: int) -> None:
    height, width = self.info.input_size
    self._interpreter.resize_tensor_input(self._input, [batch, height, width, 3], strict=True)
    self._interpreter.allocate_tensors()
    self._batch = batch

  def _raw(self, images: np.ndarray) -> List[np.ndarray]:
    # RunInference shares one model between a worker's threads; an interpreter runs one invoke at a time.
    with self._lock:
      return self._raw_locked(images)

  def _raw_locked(self, images: np.ndarray) -> List[np.ndarray]:
    count = len(images)
    if self._dynamic_batch and count != self._batch:
      self._resize(count)
    batch = images if self._dtype == np.uint8 else self.scale(images)
    step = self._batch
    get, put = self._interpreter.get_tensor, self._interpreter.set_tensor
    results = None
    for start in range(0, count, step):
      chunk = batch[start:start + step]
      if len(chunk) < step:
        chunk = np.concatenate([chunk, np.zeros((step - len(chunk),) + chunk.shape[1:], chunk.dtype)])
      put(self._input, chunk)
      self._interpreter.invoke()
      got = [get(t) for t in self._outputs]
      if results is None:
        results = [np.empty((count,) + g.shape[1:], g.dtype) for g in got]
      for result, value in zip(results, got):
        result[start:start + step] = value[:count - start]
    return [(r.astype(np.float32) - zero) * np.float32(scale) if scale else r
            for r, (scale, zero) in zip(results, self._quantization)]
