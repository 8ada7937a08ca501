"""The throughput benchmark's variants: what each one runs, as its own command, on which input, in which
python, and how its rows are counted.

  a             benchmarks.limit: read, decode, run the model in a tight loop, one process per core
  b             python -m pipeline with its defaults (DirectRunner, one worker process per core), image files
  b_tfrecord    the same job over the same images packed into TFRecord shards (pipeline/pack.py)
  b_parquet     the same job over the same images packed into Parquet tables of image structs (Hugging Face's layout)
  b_flink       the same job on the project's Flink cluster, started for the benchmark with a slot per core
                (benchmarks/flink.py); only when asked for: it needs Java
  c             benchmarks.baseline: MatchFiles + ReadMatches, Pillow in a Map, RunInference, WriteToParquet
  d             benchmarks.peer_ray: Ray Data, read_images(size=...) decoding in Ray's read tasks, map_batches
                with an actor pool holding the model, write_parquet
  d_binary      the same with read_binary_files, decoded in the actors; only when asked for
  e             benchmarks.peer_spark: local-mode PySpark, binaryFile, predict_batch_udf, Parquet
  e_pandas_udf  the same with an iterator pandas UDF; only when asked for

The peers (d, e) run in virtualenvs of their own (.venv-ray, .venv-spark: their modules' ensure_venv(), made
once from benchmarks/requirements-{ray,spark}.txt), with the same model runtimes, decode (benchmarks/
plain_models.py for c and d) and output columns as the baseline (c).

`python -m benchmarks.variants` makes the peers' virtualenvs (.ci/run does, as a step of its own).
"""
import concurrent.futures
import functools
import glob
import importlib
import json
import os
import pathlib
import shutil
import sys
from importlib import metadata
from typing import List, NamedTuple, Optional

import pyarrow.parquet as pq

from benchmarks import data, flink, shared

PYTHON = sys.executable
LOCAL_RUNNER = ['--direct_num_workers=0', '--direct_running_mode=multi_processing']  # the job's own defaults
VERSIONS = ('apache-beam', 'tensorflow', 'tensorflow-hub', 'ai-edge-litert', 'pillow', 'numpy', 'pyarrow')
PEER_LIBRARIES = ('tensorflow', 'tensorflow-hub', 'ai-edge-litert', 'pillow', 'numpy', 'pyarrow', 'pandas')


class Variant(NamedTuple):
  name: str
  default: bool = True  # run unless --variants says otherwise
  source: str = 'files'  # the DataSet field naming what it reads: files, tfrecord (shards) or parquet (tables)
  peer: Optional[str] = None  # the peer's module under benchmarks/, which has ensure_venv()
  peer_variant: Optional[str] = None  # its --variant
  framework: Optional[str] = None  # the peer's distribution, whose version the report gives


VARIANTS = {v.name: v for v in (
    Variant('a'),
    Variant('b'),
    Variant('b_tfrecord', source='tfrecord'),
    Variant('b_parquet', source='parquet'),
    Variant('c'),
    Variant('d', peer='peer_ray', peer_variant='read_images', framework='ray'),
    Variant('d_binary', default=False, peer='peer_ray', peer_variant='read_binary_files', framework='ray'),
    Variant('e', peer='peer_spark', peer_variant='predict_batch', framework='pyspark'),
    Variant('e_pandas_udf', default=False, peer='peer_spark', peer_variant='pandas_udf', framework='pyspark'),
    Variant('b_flink', default=False),
)}
DEFAULT_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.default)


def _peer(variant: Variant):
  return importlib.import_module(f'benchmarks.{variant.peer}')


@functools.lru_cache(maxsize=None)
def _peer_python(module: str) -> str:
  return importlib.import_module(f'benchmarks.{module}').ensure_venv()


def python(name: str) -> str:
  """The python that runs the variant: the project's, or the peer's own virtualenv's (made if missing)."""
  variant = VARIANTS[name]
  return _peer_python(variant.peer) if variant.peer else PYTHON


def prepare(names) -> None:
  """Makes the peers' virtualenvs (at the same time: mostly downloads and disk) before anything is timed."""
  with concurrent.futures.ThreadPoolExecutor() as pool:
    for future in [pool.submit(python, name) for name in names]:
      future.result()


def command(name: str, task: str, model: str, dataset: data.DataSet, output: str) -> List[str]:
  variant = VARIANTS[name]
  labels = ['--labels_file', str(shared.LABELS)]
  if name == 'a':
    return [PYTHON, '-m', 'benchmarks.limit', '--input', dataset.files, '--model', model, '--task', task]
  if name in ('b', 'b_tfrecord', 'b_parquet', 'b_flink'):
    source = getattr(dataset, variant.source)
    runner = flink.ACTIVE.flags if name == 'b_flink' else []
    return ([PYTHON, '-m', 'pipeline', '--input', source, '--output', output, '--model', model, '--task', task]
            + labels + runner)
  if variant.peer:
    return ([python(name), '-m', f'benchmarks.{variant.peer}', '--input', dataset.files, '--output', output,
             '--model', model, '--task', task, '--variant', variant.peer_variant] + labels)
  return ([PYTHON, '-m', 'benchmarks.baseline', '--input', dataset.files, '--output', output, '--model', model,
           '--task', task] + labels + LOCAL_RUNNER)


def rows(name: str, output: str, stdout: str) -> int:
  """The rows the run produced: the limit prints its count, the others write output/predictions."""
  if name == 'a':
    return json.loads(stdout.strip().splitlines()[-1])['images']
  return pq.ParquetDataset(os.path.join(output, 'predictions')).read(columns=['id']).num_rows


def _site_packages(venv: pathlib.Path) -> List[str]:
  return [str(p) for p in venv.glob('lib/python*/site-packages')]


def _distribution_files(names, path: Optional[List[str]] = None) -> List[str]:
  found = []
  for dist in metadata.distributions(path=path) if path is not None else metadata.distributions():
    if dist.metadata['Name'] and dist.metadata['Name'].lower() in names:
      found += [str(p) for p in (dist.locate_file(f) for f in dist.files or ()) if p.is_file()]
  return found


@functools.lru_cache(maxsize=None)
def library_files(name: str) -> tuple:
  """The installed files of the libraries the variant loads (TensorFlow's shared objects are most of them); for
  the peers, their virtualenv's copies, the framework's and, for Spark, the JVM's."""
  variant = VARIANTS[name]
  if not variant.peer:
    return tuple(_distribution_files(set(VERSIONS)))
  files = _distribution_files(set(PEER_LIBRARIES) | {variant.framework}, _site_packages(_peer(variant).VENV))
  java = shutil.which('java') if variant.framework == 'pyspark' else None
  if java:
    files += [str(p) for p in pathlib.Path(os.path.realpath(java)).parents[1].joinpath('lib').rglob('*') if p.is_file()]
  return tuple(files)


def warm_files(name: str, model: str, dataset: data.DataSet) -> List[str]:
  """What a run reads: its input, the model and the libraries (see throughput.warm)."""
  paths = glob.glob(getattr(dataset, VARIANTS[name].source))
  paths += [str(f) for f in pathlib.Path(model).rglob('*') if f.is_file()] if os.path.isdir(model) else [model]
  return paths + list(library_files(name))


def framework_versions(names) -> dict:
  """The peers' framework versions, from their virtualenvs."""
  versions = {}
  for name in names:
    variant = VARIANTS[name]
    if variant.peer and variant.framework not in versions:
      for dist in metadata.distributions(path=_site_packages(_peer(variant).VENV)):
        if (dist.metadata['Name'] or '').lower() == variant.framework:
          versions[variant.framework] = dist.version
  return versions


if __name__ == '__main__':
  prepare(VARIANTS)
  print(' '.join(f'{framework} {version}' for framework, version in framework_versions(VARIANTS).items()))
