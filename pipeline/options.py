"""Every option of the job, its defaults and its validation, in one place.

Standard Beam options (--runner, --direct_num_workers, --temp_location, ...)
pass through untouched; ImageOptions adds ours. validate() turns them into a
JobConfig or fails with a message before any work starts.
"""
import argparse
import dataclasses
import multiprocessing
import uuid
from typing import List, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (DirectOptions, GoogleCloudOptions, PipelineOptions,
                                                  StandardOptions)

from transforms import decode
from transforms.infer import models
from transforms.output import claim
from transforms.output.schema import RESERVED_COLUMNS, reduced_columns
from transforms.read.formats import detect, passthrough, tf_example
from transforms.read.settings import COMPRESSIONS, ReadSettings


class OptionsError(ValueError):
  """A bad option; the message says which and why."""


def add_model_arguments(parser, model_flag: bool = True) -> None:
  """The options that choose and describe the model; shared by the job and inspect_model."""
  if model_flag:
    parser.add_argument('--model', help='TF-Hub handle (https://tfhub.dev/... or google/...), local path or '
                        'gs:// path: a TF1 Hub module, a SavedModel, a .keras file or a .tflite file.')
  parser.add_argument('--task', default=models.BOTH, help='classify, embed or both (one forward pass).')
  parser.add_argument('--labels_file', default=None,
                      help='Class names, one per line (line i = class i). Beam keeps --labels for '
                      'Dataflow job labels.')
  parser.add_argument('--top_k', type=int, default=5, help='How many classes to keep per image.')
  parser.add_argument('--image_size', type=int, default=None,
                      help='Input size for models that accept any size (default '
                      f'{models.base.DEFAULT_IMAGE_SIZE}); must equal the size of fixed-size models.')
  parser.add_argument('--classes_output', default=None,
                      help='The output giving class scores: a signature or output name, a Keras layer, a TFLite '
                      'tensor (default: the format\'s usual one, see README).')
  parser.add_argument('--embedding_output', default=None,
                      help='The output giving the embedding, named as for --classes_output.')
  parser.add_argument('--input_range', default=None,
                      help='LOW,HIGH: the float values pixels 0 and 255 become, for float models (default 0,1, '
                      'TF-Hub\'s convention; quantized TFLite models declare theirs).')


DEFAULT_PCA_DIMS = 64
DEFAULT_CHECKPOINT_ROWS = 2000


def _flag(value: str) -> bool:
  """A switch given alone (--whiten) or with a value (--whiten=true), as Dataflow's template launcher passes it."""
  if value.lower() in ('true', 'yes', '1'):
    return True
  if value.lower() in ('false', 'no', '0'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, not {value!r}')


class ImageOptions(PipelineOptions):

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument('--input', help='Globs or .txt lists of URIs, separated by commas (local or gs://): '
                        'image files, TFRecord shards of tf.Example or WebDataset tar shards.')
    parser.add_argument('--input_format', default=detect.AUTO,
                        help=f'{"|".join((detect.AUTO,) + detect.FORMATS)}: auto detects each input\'s format from '
                        'its first file (by extension, else by content).')
    parser.add_argument('--compression', default='auto',
                        help='Of TFRecord files: auto (GZIP when the name ends in .gz), none or gzip. Tar shards '
                        'are decompressed by content.')
    parser.add_argument('--image_key', default=None,
                        help=f'tf.Example feature holding the image bytes (default {tf_example.IMAGE_KEY}), or '
                        'tar member extension (default: the first of jpg, jpeg, png, webp, bmp, gif, ...).')
    parser.add_argument('--id_key', default=None,
                        help=f'tf.Example feature holding the id (default {tf_example.ID_KEY}, then '
                        f'{tf_example.FILENAME_KEY} without extension, then the record\'s location).')
    parser.add_argument('--passthrough_keys', default=None,
                        help='Comma-separated tf.Example features, tar member extensions or KEY.json fields '
                        'copied into output columns, each optionally typed as NAME:TYPE '
                        f'({", ".join(passthrough.TYPES)}); untyped ones are typed from the first records.')
    parser.add_argument('--output', help='Output prefix (directory or gs:// path): predictions/, errors/ and '
                        'summary.json are written under it.')
    add_model_arguments(parser)
    parser.add_argument('--resize_method', default='bilinear', help='|'.join(decode.RESIZE_METHODS))
    parser.add_argument('--max_batch_size', type=int, default=64, help='Images per inference batch.')
    parser.add_argument('--min_batch_size', type=int, default=None,
                        help='Smallest inference batch (default: --max_batch_size, fixed batches); below it, '
                        "Beam's BatchElements tunes each batch's size between the two from measured timings.")
    parser.add_argument('--model_threads', type=int, default=None,
                        help='Compute threads per worker process (default: cores / local workers on the '
                        'DirectRunner, 1 elsewhere, where runners start one worker process per core).')
    parser.add_argument('--progress_seconds', type=float, default=10.0,
                        help='How often each worker logs images done and images/s.')
    parser.add_argument('--num_shards', type=int, default=0, help='Parquet files per dataset (0: runner decides).')
    parser.add_argument('--overwrite', nargs='?', const=True, default=False, type=_flag,
                        help='Replace what an earlier job wrote under --output (refused otherwise).')
    parser.add_argument('--resume', nargs='?', const=True, default=False, type=_flag,
                        help='Continue an earlier run of the same job under --output: inputs it finished are '
                        'skipped and its rows kept. Refused if the options or the model changed.')
    parser.add_argument('--checkpoint_rows', type=int, default=DEFAULT_CHECKPOINT_ROWS,
                        help='Rows each worker commits at a time for --resume (at most this much work per '
                        'worker is redone after a crash).')
    parser.add_argument('--max_image_pixels', type=int, default=decode.MAX_IMAGE_PIXELS,
                        help='Images whose header claims more pixels are refused undecoded (decompression bombs).')
    parser.add_argument('--analyze_embeddings', nargs='?', const=True, default=False, type=_flag,
                        help='Fit a tf.Transform PCA on all embeddings in this job: export the transform under '
                        'OUTPUT/transform, add the reduced embedding to every row, put statistics in the summary.')
    parser.add_argument('--pca_dims', type=int, default=None,
                        help=f'Components kept by --analyze_embeddings (default {DEFAULT_PCA_DIMS}).')
    parser.add_argument('--whiten', nargs='?', const=True, default=False, type=_flag,
                        help='With --analyze_embeddings, also add the components scaled to unit variance.')


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  pca_dims: int
  whiten: bool
  temp_dir: str  # tf.Transform's scratch space, unique to this run, removed after it


@dataclasses.dataclass(frozen=True)
class JobConfig:
  inputs: Tuple[str, ...]
  input_format: str
  read_settings: ReadSettings
  passthrough_keys: Tuple[Tuple[str, Optional[str]], ...]  # (name, declared type or None)
  output: str
  model: models.ModelSpec
  labels: Optional[str]
  top_k: int
  resize_method: str
  min_batch_size: int
  max_batch_size: int
  num_shards: int
  progress_seconds: float
  output_mode: str = claim.NEW  # new, overwrite or resume
  checkpoint_rows: int = DEFAULT_CHECKPOINT_ROWS
  max_image_pixels: int = decode.MAX_IMAGE_PIXELS
  analysis: Optional[AnalysisConfig] = None

  def shaping_options(self) -> dict:
    """The options that decide what the rows hold: a resumed run must have the same."""
    spec, settings = self.model, self.read_settings
    return {
        'input': ','.join(self.inputs), 'input_format': self.input_format, 'compression': settings.compression,
        'image_key': settings.image_key, 'id_key': settings.id_key,
        'passthrough_keys': [list(key) for key in self.passthrough_keys],
        'model': spec.location, 'task': spec.task, 'image_size': spec.image_size,
        'classes_output': spec.classes_output, 'embedding_output': spec.embedding_output,
        'input_range': list(spec.input_range) if spec.input_range else None,
        'labels_file': self.labels, 'top_k': self.top_k, 'resize_method': self.resize_method,
        'max_image_pixels': self.max_image_pixels,
        'analyze_embeddings': self.analysis is not None,
        'pca_dims': self.analysis.pca_dims if self.analysis else None,
        'whiten': self.analysis.whiten if self.analysis else None,
    }


def _require(value, flag: str):
  if value in (None, ''):
    raise OptionsError(f'{flag} is required')
  return value


def _split(value: str) -> List[str]:
  return [part.strip() for part in value.split(',') if part.strip()]


def _local_workers(options: PipelineOptions) -> Optional[int]:
  """Worker processes on this machine, or None when the runner is remote."""
  runner = options.view_as(StandardOptions).runner
  if runner not in (None, 'DirectRunner', 'direct'):
    return None
  return options.view_as(DirectOptions).direct_num_workers or multiprocessing.cpu_count()


def apply_local_defaults(argv: Sequence[str], options: PipelineOptions) -> None:
  """On the DirectRunner, use every core unless the user chose otherwise."""
  if _local_workers(options) is None:
    return
  direct = options.view_as(DirectOptions)
  if not any(a.startswith('--direct_num_workers') for a in argv):
    direct.direct_num_workers = 0  # Beam reads 0 as one worker per core
  if not any(a.startswith('--direct_running_mode') for a in argv):
    direct.direct_running_mode = 'multi_processing'


def _check_resize(method: str) -> None:
  if method not in decode.RESIZE_METHODS:
    raise OptionsError(f'--resize_method must be one of {", ".join(decode.RESIZE_METHODS)}, not {method!r}')


def _input_range(value: Optional[str]) -> Optional[Tuple[float, float]]:
  if value is None:
    return None
  try:
    low, high = (float(part) for part in value.split(','))
  except ValueError:
    raise OptionsError(f'--input_range must be LOW,HIGH (e.g. -1,1), not {value!r}') from None
  if not low < high:
    raise OptionsError(f'--input_range needs LOW < HIGH, got {value!r}')
  return (low, high)


def model_spec(o, threads: Optional[int] = None) -> models.ModelSpec:
  """The model options (as add_model_arguments defines them), checked; raises OptionsError."""
  location = _require(o.model, '--model')
  if o.task not in models.TASKS:
    raise OptionsError(f'--task must be one of {", ".join(models.TASKS)}, not {o.task!r}')
  if o.top_k < 1:
    raise OptionsError(f'--top_k must be at least 1, not {o.top_k}')
  if o.image_size is not None and o.image_size < 1:
    raise OptionsError(f'--image_size must be positive, not {o.image_size}')
  if o.labels_file and not FileSystems.exists(o.labels_file):
    raise OptionsError(f'--labels_file not found: {o.labels_file}')
  return models.ModelSpec(models.locate.canonical(location), o.task, o.image_size, threads, o.classes_output,
                          o.embedding_output, _input_range(o.input_range))


@dataclasses.dataclass(frozen=True)
class InspectConfig:
  model: models.ModelSpec
  labels: Optional[str]
  top_k: int
  image: Optional[str]
  resize_method: str
  any_task: bool  # no --task given: show whichever of both, classify, embed the model can do


def parse_inspect(argv: Sequence[str]) -> InspectConfig:
  """Options of `python -m pipeline.inspect_model MODEL [IMAGE]`; raises OptionsError."""
  parser = argparse.ArgumentParser(prog='python -m pipeline.inspect_model',
                                   description='Describe a model and show its top classes for an image.')
  parser.add_argument('model', help='TF-Hub handle, local path or gs:// path of the model')
  parser.add_argument('image', nargs='?', default=None, help='an image file to classify and embed')
  add_model_arguments(parser, model_flag=False)
  parser.add_argument('--resize_method', default='bilinear', help='|'.join(decode.RESIZE_METHODS))
  parser.set_defaults(task=None)
  o = parser.parse_args(argv)
  _check_resize(o.resize_method)
  any_task = o.task is None
  o.task = o.task or models.BOTH
  return InspectConfig(model_spec(o), o.labels_file, o.top_k, o.image, o.resize_method, any_task)


def _analysis(options: PipelineOptions, output_prefix: str, spec: models.ModelSpec,
              passthrough_keys: Sequence[Tuple[str, Optional[str]]]) -> Optional[AnalysisConfig]:
  o = options.view_as(ImageOptions)
  if not o.analyze_embeddings:
    if o.pca_dims is not None or o.whiten:
      raise OptionsError('--pca_dims and --whiten need --analyze_embeddings')
    return None
  if not spec.wants_embedding:
    raise OptionsError(f'--analyze_embeddings needs embeddings: --task {models.EMBED} or {models.BOTH}, '
                       f'not {spec.task}')
  dims = DEFAULT_PCA_DIMS if o.pca_dims is None else o.pca_dims
  if dims < 1:
    raise OptionsError(f'--pca_dims must be positive, not {dims}')
  taken = sorted({name for name, _ in passthrough_keys} & set(reduced_columns(o.whiten)))
  if taken:
    raise OptionsError(f'--passthrough_keys {", ".join(taken)}: taken by --analyze_embeddings\'s columns')
  # A shared place every worker can reach: --temp_location when given (gs:// on Dataflow), else the output.
  temp_root = options.view_as(GoogleCloudOptions).temp_location or output_prefix
  return AnalysisConfig(dims, o.whiten, FileSystems.join(temp_root, f'tft_tmp-{uuid.uuid4().hex}'))


def check_model_fit(config: JobConfig, info: models.ModelInfo) -> None:
  """Checks what needs the model, once it is loaded and before any data is read."""
  if config.analysis and info.embedding_dim is not None and config.analysis.pca_dims > info.embedding_dim:
    raise OptionsError(f'--pca_dims {config.analysis.pca_dims} is larger than the embedding size, '
                       f'{info.embedding_dim} for {config.model.location}')


def validate(options: PipelineOptions) -> JobConfig:
  """Checks what can be checked without data; raises OptionsError."""
  o = options.view_as(ImageOptions)
  patterns = tuple(_split(_require(o.input, '--input')))
  output_prefix = _require(o.output, '--output').rstrip('/')
  _require(o.model, '--model')
  _check_resize(o.resize_method)
  min_batch_size = o.max_batch_size if o.min_batch_size is None else o.min_batch_size
  if min_batch_size < 1 or o.max_batch_size < min_batch_size:
    raise OptionsError(f'need 1 <= --min_batch_size <= --max_batch_size, got {min_batch_size} and '
                       f'{o.max_batch_size}')
  if o.progress_seconds <= 0:
    raise OptionsError(f'--progress_seconds must be positive, not {o.progress_seconds}')
  if o.num_shards < 0:
    raise OptionsError(f'--num_shards must be 0 or more, not {o.num_shards}')
  if o.overwrite and o.resume:
    raise OptionsError('--overwrite and --resume exclude each other: start over, or continue')
  if o.checkpoint_rows < 1:
    raise OptionsError(f'--checkpoint_rows must be positive, not {o.checkpoint_rows}')
  if o.max_image_pixels < 1:
    raise OptionsError(f'--max_image_pixels must be positive, not {o.max_image_pixels}')
  if o.input_format not in (detect.AUTO,) + detect.FORMATS:
    raise OptionsError(f'--input_format must be one of {", ".join((detect.AUTO,) + detect.FORMATS)}, '
                       f'not {o.input_format!r}')
  if o.compression not in COMPRESSIONS:
    raise OptionsError(f'--compression must be one of {", ".join(COMPRESSIONS)}, not {o.compression!r}')
  try:
    passthrough_keys = passthrough.parse_keys(o.passthrough_keys, RESERVED_COLUMNS)
  except passthrough.PassthroughError as e:
    raise OptionsError(str(e)) from e
  settings = ReadSettings(o.image_key or None, o.id_key or None, o.compression)
  threads = o.model_threads
  if threads is None:
    workers = _local_workers(options)
    threads = max(1, multiprocessing.cpu_count() // workers) if workers else 1
  elif threads < 1:
    raise OptionsError(f'--model_threads must be positive, not {threads}')
  spec = model_spec(o, threads)
  mode = claim.OVERWRITE if o.overwrite else claim.RESUME if o.resume else claim.NEW
  return JobConfig(patterns, o.input_format, settings, passthrough_keys, output_prefix, spec, o.labels_file,
                   o.top_k, o.resize_method, min_batch_size, o.max_batch_size, o.num_shards, o.progress_seconds,
                   mode, o.checkpoint_rows, o.max_image_pixels,
                   _analysis(options, output_prefix, spec, passthrough_keys))


@dataclasses.dataclass(frozen=True)
class PackConfig:
  inputs: Tuple[str, ...]
  output: str
  format: str
  images_per_shard: int
  gzip: bool
  pipeline_options: PipelineOptions  # filesystem options such as --no_auth


def parse_pack(argv: Optional[Sequence[str]] = None) -> PackConfig:
  """Options of the packer (python -m pipeline.pack); Beam filesystem flags such as --no_auth pass through."""
  parser = argparse.ArgumentParser(prog='python -m pipeline.pack', description='Pack image files into TFRecord '
                                   'or WebDataset tar shards, keeping the ids the job gives the files.')
  parser.add_argument('--input', required=True, help='A folder (every image file under it), globs or .txt lists '
                      'of URIs, separated by commas; local or gs://.')
  parser.add_argument('--output', required=True, help='Shard path prefix: PREFIX-SSSSS-of-NNNNN.tfrecord or .tar')
  parser.add_argument('--format', default=detect.TFRECORD, help=f'{detect.TFRECORD} or {detect.TAR}')
  parser.add_argument('--images_per_shard', type=int, default=1000, help='Images in each shard.')
  parser.add_argument('--compression', default='none', help='none or gzip')
  args, rest = parser.parse_known_args(argv)
  if args.format not in (detect.TFRECORD, detect.TAR):
    raise OptionsError(f'--format must be {detect.TFRECORD} or {detect.TAR}, not {args.format!r}')
  if args.compression not in ('none', 'gzip'):
    raise OptionsError(f'--compression must be none or gzip, not {args.compression!r}')
  if args.images_per_shard < 1:
    raise OptionsError(f'--images_per_shard must be positive, not {args.images_per_shard}')
  return PackConfig(tuple(_split(args.input)), args.output, args.format, args.images_per_shard,
                    args.compression == 'gzip', PipelineOptions(rest))
