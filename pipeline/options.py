"""The job's options: their defaults, meaning (`python -m pipeline --help`) and validation, in one place.

Standard Beam options (--runner, --temp_location, ...) pass through untouched; ImageOptions adds ours. validate()
turns the options into a JobConfig or fails with a message, before any work starts. The model options, which
pipeline.inspect_model shares, are defined in pipeline/model_options.py; pipeline/command_line.py prints the help
and refuses options nobody knows.
"""
import dataclasses
import uuid
from typing import Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline import local_defaults
from pipeline.model_options import (OptionsError, add_model_arguments, add_resize_argument, check_resize_method,
                                     model_spec, require, split_list)
from pipeline.launcher_options import switch
from transforms import decode
from transforms.format import DEFAULT_PROGRESS_SECONDS  # defined beside FormatRows, which logs the progress
from transforms.infer import handler, models
from transforms.output import claim, vectors
from transforms.output.schema import RESERVED_COLUMNS, reduced_columns
from transforms.read import image_units, plan
from transforms.read.formats import detect, parquet_table, passthrough, tf_example
from transforms.read.settings import (COMPRESSIONS, MAX_INPUT_BYTES, READ_BYTES_IN_FLIGHT, READS_IN_FLIGHT,
                                      ReadSettings)

DEFAULT_MAX_BATCH_SIZE = 64  # fixed batches of this size unless --min_batch_size asks for a range (docs/benchmarks.md)
DEFAULT_PCA_DIMS = 64

REMOVED = {'--num_shards': 'each read unit is its own Parquet part (docs/output.md)',  # refused, saying why
           '--checkpoint_rows': 'each read unit is committed when done (docs/output.md); see --files_per_unit',
           '--image_groups': 'image files are cut into units of about --files_per_unit files, whatever the job\'s '
                             'size (docs/output.md)'}


class ImageOptions(PipelineOptions):
  """The job's options, in the groups `python -m pipeline --help` shows."""

  @classmethod
  def _add_argparse_args(cls, parser):
    inputs = parser.add_argument_group('inputs', 'Image files, TFRecord shards of tf.Example, WebDataset tar\n'
                                       'shards or Parquet and Arrow image tables, on local disk or any Beam filesystem\n'
                                       '(gs://).')
    inputs.add_argument('--input', help='Required. Globs, folders (every image file, or every TFRecord or tar '
                        'shard, under them) or .txt lists of URIs one per line, separated by commas.')
    inputs.add_argument('--input_format', default=detect.AUTO,
                        help=f'{", ".join((detect.AUTO,) + detect.FORMATS)}: {detect.AUTO} detects each input\'s '
                        'format from its first file (by extension, else by content).')
    inputs.add_argument('--compression', default=detect.AUTO,
                        help=f'Of TFRecord files: {", ".join(COMPRESSIONS)} ({detect.AUTO}: GZIP when the name ends '
                        'in .gz). Tar shards are decompressed by content.')
    inputs.add_argument('--image_key', default=None,
                        help=f'TFRecord: the tf.Example feature holding the image bytes (default '
                        f'{tf_example.IMAGE_KEY}); tar: the member extension holding it (default: the first of '
                        f'{", ".join(detect.IMAGE_EXTENSIONS)}).')
    inputs.add_argument('--id_key', default=None,
                        help=f'TFRecord: the tf.Example feature holding the id (default {tf_example.ID_KEY}, then '
                        f'{tf_example.FILENAME_KEY} without extension, then the record\'s location).')
    inputs.add_argument('--image_column', default=None,
                        help='Parquet and Arrow tables: the column holding the image: binary, a Hugging Face image struct '
                        '{bytes, path} or a string of locations (gs://, paths relative to the table, http(s) with '
                        '--allow_http), read as image files are (default: the one binary or image-struct column).')
    inputs.add_argument('--id_column', default=None,
                        help=f'Parquet and Arrow tables: the column holding the id (default {parquet_table.ID_COLUMN} if the '
                        'table has one, else the image struct\'s path, else TABLE#row=N).')
    switch(inputs, '--allow_http', 'Tables of locations: read http(s) ones too (they are refused by default).')
    inputs.add_argument('--reads_in_flight', type=int, default=READS_IN_FLIGHT,
                        help='Reads each reading thread keeps in flight while the model runs (image files, and on '
                        'gs:// ranged reads of TFRecord and tar shards), taken in order; about storage latency x '
                        'images per second per worker (60 ms x 450/s is 27). 1: one read at a time.')
    inputs.add_argument('--read_bytes_in_flight', type=int, default=READ_BYTES_IN_FLIGHT,
                        help='The bytes those reads may hold at once (a larger file is read alone).')
    inputs.add_argument('--passthrough_keys', default=None,
                        help='TFRecord features, tar member extensions or KEY.json fields copied into output '
                        'columns of the same name, comma-separated, each optionally typed NAME:TYPE '
                        f'({", ".join(passthrough.TYPES)}); untyped ones are typed from the first records. '
                        'Parquet and Arrow tables: the columns passed through (default: all but the image and id), '
                        'with their own types.')

    model = parser.add_argument_group('model', 'Which model, what it computes and how images are fed to it.')
    add_model_arguments(model)
    add_resize_argument(model)
    model.add_argument('--max_batch_size', type=int, default=DEFAULT_MAX_BATCH_SIZE,
                       help='Images per inference batch.')
    model.add_argument('--min_batch_size', type=int, default=None,
                       help='Smallest inference batch (default: --max_batch_size, fixed batches); below it, '
                       'Beam\'s BatchElements tunes each batch\'s size between the two from measured timings.')
    model.add_argument('--model_threads', type=int, default=None,
                       help='Compute threads per worker process, or per shared copy (default: cores / local '
                       'workers on the DirectRunner, 1 elsewhere; cores / --model_copies).')
    model.add_argument('--model_copies', type=int, default=None,
                       help='Copies of the model per machine, shared by all its worker processes through Beam\'s '
                       'cross-process sharing (default: one per worker process). Saves memory, costs CPU per image '
                       '(docs/benchmarks.md).')

    output = parser.add_argument_group('output', 'Parquet datasets predictions/ and errors/, and summary.json.')
    output.add_argument('--output', help='Required. Output prefix, a directory or gs:// path.')
    switch(output, '--overwrite', 'Replace what an earlier job wrote under --output (deleted at launch); '
           'without it, or --resume, an output a job wrote before is refused.')
    output.add_argument('--embedding_dtype', default=vectors.DEFAULT_DTYPE,
                        help=f'{", ".join(vectors.DTYPES)}: the embedding column\'s values (float16, as '
                        'clip-retrieval and autofaiss take them, halves its size).')
    switch(output, '--normalize_embeddings', 'Scale every embedding to unit L2 norm (cosine similarity becomes '
           'a dot product; before the float16 cast).')
    output.add_argument('--progress_seconds', type=float, default=DEFAULT_PROGRESS_SECONDS,
                        help='How often the progress line (images done, images/s, errors, ETA) is printed when '
                        'stderr is not a terminal (a terminal gets one updating bar); on remote runners, how '
                        'often each worker logs its own.')

    reliability = parser.add_argument_group('reliability', 'Reruns, crashes and bad input.')
    switch(reliability, '--resume', 'Continue an earlier run of the same job under --output: inputs it finished '
           'are skipped and its rows kept. Refused if the options that shape rows or the model\'s files changed.')
    reliability.add_argument('--files_per_unit', type=int, default=image_units.DEFAULT_FILES_PER_UNIT,
                             help='Image files are read and committed in units of about this many (runs of files '
                             'in path order, cut where the paths say); --resume skips committed units, a crash '
                             'redoes those being read. Fixed for an output at its first run.')
    reliability.add_argument('--max_image_pixels', type=int, default=decode.MAX_IMAGE_PIXELS,
                             help='An image whose header claims more pixels is refused before any pixel is '
                             'decoded (decompression bombs).')
    reliability.add_argument('--decode_timeout_seconds', type=float, default=decode.DECODE_TIMEOUT_SECONDS,
                             help='An image not decoded in this many seconds is a decode error (0: no bound).')
    reliability.add_argument('--inference_timeout_seconds', type=float, default=handler.INFERENCE_TIMEOUT_SECONDS,
                             help='A batch the model has not done in this many seconds is infer errors (0: no bound).')
    reliability.add_argument('--max_input_bytes', type=int, default=MAX_INPUT_BYTES,
                             help='An image file, tar member or TFRecord record larger than this many bytes is '
                             'an error row, refused without being read into memory.')

    analysis = parser.add_argument_group('analysis', 'A PCA of all embeddings, fitted by TensorFlow Transform in '
                                         'the job.')
    switch(analysis, '--analyze_embeddings', 'Fit the PCA, add the reduced embedding to every row, export the '
           'transform under OUTPUT/transform for training and put embedding statistics in the summary.')
    analysis.add_argument('--pca_dims', type=int, default=None,
                          help=f'Components kept by --analyze_embeddings, 1 to the embedding size (default '
                          f'{DEFAULT_PCA_DIMS}).')
    switch(analysis, '--whiten', 'With --analyze_embeddings, also add the components scaled to unit variance.')


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
  pca_dims: int
  whiten: bool
  temp_dir: str  # tf.Transform's scratch space, unique to this run, removed after it


@dataclasses.dataclass(frozen=True, kw_only=True)
class JobConfig:
  """The checked options of one job; built by keyword."""
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
  progress_seconds: float
  output_mode: str = claim.NEW  # new, overwrite or resume
  files_per_unit: int = image_units.DEFAULT_FILES_PER_UNIT
  max_image_pixels: int = decode.MAX_IMAGE_PIXELS
  decode_timeout_seconds: float = decode.DECODE_TIMEOUT_SECONDS  # 0: no bound
  inference_timeout_seconds: float = handler.INFERENCE_TIMEOUT_SECONDS  # 0: no bound
  model_copies: Optional[int] = None  # per machine, shared by its workers; None: one per worker process
  analysis: Optional[AnalysisConfig] = None
  embedding_dtype: str = vectors.DEFAULT_DTYPE
  normalize_embeddings: bool = False


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


def validate(options: PipelineOptions) -> JobConfig:
  """Checks what can be checked without data; raises OptionsError."""
  o = options.view_as(ImageOptions)
  patterns = tuple(split_list(require(o.input, '--input')))
  output_prefix = require(o.output, '--output').rstrip('/')
  require(o.model, '--model')
  check_resize_method(o.resize_method)
  min_batch_size = o.max_batch_size if o.min_batch_size is None else o.min_batch_size
  if min_batch_size < 1 or o.max_batch_size < min_batch_size:
    raise OptionsError(f'need 1 <= --min_batch_size <= --max_batch_size, got {min_batch_size} and '
                       f'{o.max_batch_size}')
  if o.progress_seconds <= 0:
    raise OptionsError(f'--progress_seconds must be positive, not {o.progress_seconds}')
  for flag, value, least in (('--files_per_unit', o.files_per_unit, 1),
                             ('--max_image_pixels', o.max_image_pixels, 1),
                             ('--max_input_bytes', o.max_input_bytes, 1),
                             ('--reads_in_flight', o.reads_in_flight, 1),
                             ('--read_bytes_in_flight', o.read_bytes_in_flight, 1),
                             ('--decode_timeout_seconds', o.decode_timeout_seconds, 0),
                             ('--inference_timeout_seconds', o.inference_timeout_seconds, 0),
                             ('--model_threads', 1 if o.model_threads is None else o.model_threads, 1),
                             ('--model_copies', 1 if o.model_copies is None else o.model_copies, 1)):
    if value < least:
      raise OptionsError(f'{flag} must be {"positive" if least else "0 or more"}, not {value}')
  if o.overwrite and o.resume:
    raise OptionsError('--overwrite and --resume exclude each other: start over, or continue')
  if o.input_format not in (detect.AUTO,) + detect.FORMATS:
    raise OptionsError(f'--input_format must be one of {", ".join((detect.AUTO,) + detect.FORMATS)}, '
                       f'not {o.input_format!r}')
  if o.compression not in COMPRESSIONS:
    raise OptionsError(f'--compression must be one of {", ".join(COMPRESSIONS)}, not {o.compression!r}')
  try:
    passthrough_keys = passthrough.parse_keys(o.passthrough_keys, RESERVED_COLUMNS)
  except passthrough.PassthroughError as e:
    raise OptionsError(str(e)) from e
  settings = ReadSettings(o.image_key or None, o.id_key or None, o.compression,
                          max_input_bytes=o.max_input_bytes, reads_in_flight=o.reads_in_flight,
                          read_bytes_in_flight=o.read_bytes_in_flight,
                          anonymous=bool(options.view_as(GoogleCloudOptions).no_auth),
                          image_column=o.image_column or None, id_column=o.id_column or None,
                          allow_http=bool(o.allow_http))
  threads = o.model_threads
  if threads is None and o.model_copies is None:  # with copies: cores / copies where the model loads (handler)
    threads = local_defaults.model_threads(options)
  spec = model_spec(o, threads)
  if o.embedding_dtype not in vectors.DTYPES:
    raise OptionsError(f'--embedding_dtype must be one of {", ".join(vectors.DTYPES)}, not {o.embedding_dtype!r}')
  if not spec.wants_embedding and (o.normalize_embeddings or o.embedding_dtype != vectors.DEFAULT_DTYPE):
    raise OptionsError(f'--embedding_dtype and --normalize_embeddings need embeddings: --task {models.EMBED} or '
                       f'{models.BOTH}, not {spec.task}')
  mode = claim.OVERWRITE if o.overwrite else claim.RESUME if o.resume else claim.NEW
  return JobConfig(inputs=patterns, input_format=o.input_format, read_settings=settings,
                   passthrough_keys=passthrough_keys, output=output_prefix, model=spec, labels=o.labels_file,
                   top_k=o.top_k, resize_method=o.resize_method, min_batch_size=min_batch_size,
                   max_batch_size=o.max_batch_size, progress_seconds=o.progress_seconds,
                   output_mode=mode, files_per_unit=o.files_per_unit, max_image_pixels=o.max_image_pixels,
                   decode_timeout_seconds=o.decode_timeout_seconds,
                   inference_timeout_seconds=o.inference_timeout_seconds, model_copies=o.model_copies,
                   analysis=_analysis(options, output_prefix, spec, passthrough_keys),
                   embedding_dtype=o.embedding_dtype, normalize_embeddings=o.normalize_embeddings)


def plan_inputs(config: JobConfig) -> plan.InputPlan:
  """The read plan of the job's inputs (raises plan.InputError); a table's columns may not take the output's."""
  return plan.plan_inputs(config.inputs, config.input_format, config.read_settings, config.passthrough_keys,
                          RESERVED_COLUMNS + reduced_columns(whiten=True))
