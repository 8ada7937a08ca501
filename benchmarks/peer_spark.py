"""(e) A peer: the same work as a local-mode PySpark job, written the way Spark's documentation shows it.

`python benchmarks/peer_spark.py --input GLOB --output DIR --model MODEL --task classify|both --labels_file FILE
[--variant predict_batch|pandas_udf]` (or `-m benchmarks.peer_spark`), run by the python of .venv-spark
(ensure_venv(); started from another python, it re-runs itself there).

The binaryFile source reads each file whole; the model runs in a Python UDF over the `content` column, the
bytes decoded there with Pillow (whole image resized to 160x160, bilinear, as benchmarks/baseline.py does);
top-k and labels are taken in the UDF; id and source come from `path` with Spark's own functions; Parquet goes
to DIR/predictions with baseline.py's columns. Two UDFs, as the documentation offers them:
- predict_batch: pyspark.ml.functions.predict_batch_udf, whose make_predict_fn loads the model once per
  Python worker (Spark caches the predict function in the reused worker);
- pandas_udf: an Iterator[pd.Series] -> Iterator[pd.DataFrame] pandas UDF that loads the model once per
  iterator, i.e. per partition.
local[*] (one task per core), Python workers reused, Arrow batches of BATCH rows, files split into
partitions by bytes (a local file costs nothing to open), so a model is loaded about once per core.
Threads are the libraries' defaults, as in the baseline. Imports only the standard library at the top, so
that ensure_venv() can be called from the project's own environment.
"""
import argparse
import fcntl
import hashlib
import os
import pathlib
import subprocess
import sys
from typing import Optional, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / 'benchmarks' / 'requirements-spark.txt'
VENV = ROOT / '.venv-spark'
SIZE = 160  # both models take 160x160
TOP_K = 5
BATCH = 64  # rows per model call and per Arrow batch: the Beam job's default batch (pipeline/options.py)


def ensure_venv() -> str:
  """The python of .venv-spark, made from requirements-spark.txt (pyspark beside the project's model runtimes;
  its pins would not sit with Beam's) only if missing or its pins changed: the requirements' hash is kept in it
  (installed.sha256, as benchmarks/venvs.py keeps it). A lock keeps two callers from installing it at once."""
  digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
  python, stamp = VENV / 'bin' / 'python', VENV / 'installed.sha256'
  with open(ROOT / f'.{VENV.name}.lock', 'w', encoding='ascii') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (python.exists() and stamp.is_file() and stamp.read_text(encoding='ascii') == digest):
      subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
      subprocess.run([str(python), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-r',
                      str(REQUIREMENTS)], check=True)
      stamp.write_text(digest, encoding='ascii')
  return str(python)


def load_model(path: str, task: str):
  """The model as the baseline calls it: a function from uint8 pixels [N, 160, 160, 3] to a dict of
  `probabilities` [N, 1001] (and `embedding` [N, 512] for task both)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  if path.endswith('.tflite'):
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source, = interpreter.get_input_details()
    target, = interpreter.get_output_details()
    scale, zero_point = target['quantization']

    def tflite(images):
      out = []
      for image in images:  # the file's batch is one: one invoke per image
        interpreter.set_tensor(source['index'], image[np.newaxis])
        interpreter.invoke()
        out.append((interpreter.get_tensor(target['index'])[0].astype(np.float32) - zero_point) * scale)
      return {'probabilities': np.stack(out)}
    return tflite
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel
  module = hub.load(path)

  def hub_module(images):
    inputs = tf.constant(images.astype(np.float32) / 255.0)
    logits = module.signatures['image_classification'](images=inputs)['default']
    outputs = {'probabilities': tf.nn.softmax(logits).numpy()}
    if task == 'both':
      outputs['embedding'] = module.signatures['image_feature_vector'](images=inputs)['default'].numpy()
    return outputs
  return hub_module


def make_predict_fn(model_path: str, task: str, labels: Sequence[str]):
  """Loads the model; returns the predict function over a batch of encoded images (a 1-D array of bytes):
  decode, resize, the model, top-k; columns as a dict of 2-D arrays (a struct of arrays for Spark)."""
  import io  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  model = load_model(model_path, task)
  label_array = np.asarray(labels, dtype=object)

  def predict(contents):
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(content)).convert('RGB')
                                  .resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for content in contents])
    outputs = model(pixels)
    probabilities = outputs['probabilities']
    best = np.argsort(-probabilities, axis=1)[:, :TOP_K]
    columns = {'top_classes': best.astype(np.int32), 'top_labels': label_array[best],
               'top_scores': np.take_along_axis(probabilities, best, axis=1).astype(np.float32)}
    if 'embedding' in outputs:
      columns['embedding'] = outputs['embedding'].astype(np.float32)
    return columns
  return predict


def result_type(task: str):
  from pyspark.sql import types as T  # pylint: disable=import-outside-toplevel
  fields = [T.StructField('top_classes', T.ArrayType(T.IntegerType())),
            T.StructField('top_labels', T.ArrayType(T.StringType())),
            T.StructField('top_scores', T.ArrayType(T.FloatType()))]
  if task == 'both':
    fields.append(T.StructField('embedding', T.ArrayType(T.FloatType())))
  return T.StructType(fields)


def predict_batch(model_path: str, task: str, labels: Sequence[str]):
  """The UDF by pyspark.ml.functions.predict_batch_udf: the content column comes as a 1-D array of bytes."""
  from pyspark.ml.functions import predict_batch_udf  # pylint: disable=import-outside-toplevel
  return predict_batch_udf(lambda: make_predict_fn(model_path, task, labels), return_type=result_type(task),
                           batch_size=BATCH)


def pandas_udf(model_path: str, task: str, labels: Sequence[str]):
  """The UDF as a pandas UDF over an iterator of batches, the model loaded once per iterator."""
  from typing import Iterator  # pylint: disable=import-outside-toplevel
  import pandas as pd  # pylint: disable=import-outside-toplevel
  from pyspark.sql.functions import pandas_udf as pandas_udf_of  # pylint: disable=import-outside-toplevel

  @pandas_udf_of(result_type(task))
  def infer(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    predict = make_predict_fn(model_path, task, labels)
    for contents in batches:
      yield pd.DataFrame({name: list(values) for name, values in predict(contents.to_numpy()).items()})
  return infer


def session(app: str):
  """A local session on every core: reused Python workers (this python), Arrow batches of BATCH rows,
  partitions by bytes only, modest driver memory, no UI, errors only in the log. (Selecting the struct's
  fields after one UDF column keeps one ArrowEvalPython in the plan: the model runs once per row.)"""
  from pyspark.sql import SparkSession  # pylint: disable=import-outside-toplevel
  os.environ['PYSPARK_PYTHON'] = sys.executable  # workers run this venv's python, not python3 on the PATH
  os.environ['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('SPARK_LOCAL_IP', '127.0.0.1')  # local mode: no network address to look for
  return (SparkSession.builder.master('local[*]').appName(app)
          .config('spark.driver.memory', '1g')
          .config('spark.python.worker.reuse', 'true')
          .config('spark.sql.execution.arrow.maxRecordsPerBatch', str(BATCH))
          .config('spark.sql.files.openCostInBytes', '0')
          .config('spark.ui.enabled', 'false')
          .config('spark.ui.showConsoleProgress', 'false')
          .config('spark.log.level', 'ERROR')
          .getOrCreate())


def run(pattern: str, output: str, model: str, task: str, labels_file: str, variant: str = 'predict_batch') -> None:
  from pyspark.sql import functions as F  # pylint: disable=import-outside-toplevel
  with open(labels_file, encoding='utf-8') as f:
    labels = f.read().splitlines()
  udf = {'predict_batch': predict_batch, 'pandas_udf': pandas_udf}[variant](model, task, labels)
  spark = session(f'peer_spark_{variant}')
  try:
    files = spark.read.format('binaryFile').load(pattern)
    source = F.regexp_replace('path', '^file:', '')  # a local path, as the baseline gives it
    name = F.element_at(F.split(source, '/'), -1)
    rows = files.select(F.regexp_replace(name, r'\.[^.]*$', '').alias('id'), source.alias('source'),
                        udf('content').alias('prediction'))
    rows.select('id', 'source', 'prediction.*').write.mode('overwrite').parquet(os.path.join(output, 'predictions'))
  finally:
    spark.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.peer_spark', description=__doc__.split('\n')[0])
  parser.add_argument('--input', required=True, help='glob of image files')
  parser.add_argument('--output', required=True, help='Parquet goes to OUTPUT/predictions')
  parser.add_argument('--model', required=True, help='a .tflite file or a TF1 Hub module directory')
  parser.add_argument('--task', default='classify', choices=('classify', 'both'))
  parser.add_argument('--labels_file', required=True)
  parser.add_argument('--variant', default='predict_batch', choices=('predict_batch', 'pandas_udf'))
  args = parser.parse_args(argv)
  try:
    import pyspark  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:  # started from another environment: run again in .venv-spark
    python = ensure_venv()
    cmd = [python, '-m', 'benchmarks.peer_spark'] + list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])))
    return subprocess.run(cmd, env=env, check=False).returncode
  run(args.input, args.output, args.model, args.task, args.labels_file, args.variant)
  return 0


if __name__ == '__main__':
  sys.exit(main())
