"""One streaming pass over a dataset with pyarrow: exact counts and histograms, plus bounded samples for pictures.

Nothing here holds the whole dataset: batches are read one at a time (no
readahead, so memory stays about one batch), every count is exact, and the
rows kept for thumbnails, the lowest scores and the embedding map are bounded
samples (`Keep`) whose sizes the page states.
"""
import datetime
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

BATCH_ROWS = 16384
SCORE_BINS = 20
PER_LABEL = 6  # thumbnails sampled per frequent label
LOWEST = 12  # lowest-confidence rows shown
MAP_SAMPLE = 2000  # rows of the embedding map
ERROR_EXAMPLES = 3  # example rows per (stage, error type)
_SEED = 0  # the samples are the same for the same dataset


def filesystem(uri: str) -> Tuple[pafs.FileSystem, str]:
  """pyarrow's filesystem for a local path or gs:// URI, and the path on it. On GCS it talks to
  $STORAGE_EMULATOR_HOST when set, as google-cloud-storage does, and gives up on an unreachable service after a
  minute (pyarrow's default retries for 15): the report must not hang a finished job."""
  if not uri.startswith('gs://'):
    return pafs.FileSystem.from_uri(uri if '://' in uri else os.path.abspath(uri))
  options = {'retry_time_limit': datetime.timedelta(seconds=60)}
  emulator = os.environ.get('STORAGE_EMULATOR_HOST')
  if emulator:
    scheme, _, endpoint = emulator.rpartition('://')
    options.update(endpoint_override=endpoint, scheme=scheme or 'http', anonymous=True)
  return pafs.GcsFileSystem(**options), uri[len('gs://'):]


def dataset(path: str) -> ds.Dataset:
  """A Parquet dataset folder, local or gs://; names starting with _ or . are skipped."""
  fs, where = filesystem(path)
  return ds.dataset(where, format='parquet', filesystem=fs)


def batches(data: ds.Dataset, columns: Sequence[str]):
  """The dataset's batches, one in memory at a time (pre-buffering whole row groups nearly doubled the peak)."""
  return data.to_batches(columns=list(columns), batch_size=BATCH_ROWS, batch_readahead=0, fragment_readahead=1,
                         fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False))


class Codes:
  """Strings -> small integers stable across batches (labels, error kinds), via Arrow's dictionary encoding."""

  def __init__(self):
    self.names: List[str] = []
    self._index: Dict[str, int] = {}

  def encode(self, strings: pa.Array) -> np.ndarray:
    encoded = pc.dictionary_encode(strings.fill_null(''))
    lookup = np.array([self._code(name) for name in encoded.dictionary.to_pylist()] or [0], np.int64)
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)]

  def _code(self, name: str) -> int:
    if name not in self._index:
      self._index[name] = len(self.names)
      self.names.append(name)
    return self._index[name]


class Keep:
  """The rows with the smallest sort keys seen so far, at most `limit` per group: a bounded sample of a scan."""

  def __init__(self, limit: int):
    self.limit = limit
    self.rows: Optional[pa.Table] = None

  def offer(self, table: pa.Table, sort: np.ndarray, group: Optional[np.ndarray] = None) -> None:
    if group is None and self.rows is not None and self.rows.num_rows >= self.limit:
      below = sort < self.rows['_sort'].to_numpy().max()  # cannot enter a full ungrouped sample otherwise
      table, sort = table.filter(pa.array(below)), sort[below]
    if not len(sort):
      return
    group = np.zeros(len(sort), np.int64) if group is None else group
    table = table.append_column('_sort', pa.array(sort)).append_column('_group', pa.array(group, pa.int64()))
    merged = table if self.rows is None else pa.concat_tables([self.rows, table])
    groups = merged['_group'].to_numpy()
    order = np.lexsort((merged['_sort'].to_numpy(), groups))
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    self.rows = merged.take(pa.array(order[rank < self.limit])).combine_chunks()

  def table(self) -> pa.Table:
    return self.rows if self.rows is not None else pa.table({})


def top1_label_column(schema: pa.Schema) -> Optional[str]:
  for name in ('top_labels', 'top_classes'):
    if name in schema.names:
      return name
  return None


def top1_strings(batch: pa.RecordBatch, column: str) -> pa.Array:
  """Each row's best class as a string: its label, else `class N`."""
  first = pc.list_element(batch.column(column), 0)
  if column == 'top_classes':
    first = pc.binary_join_element_wise('class ', pc.cast(first, pa.string()), '')
  return first


class Predictions:
  """Everything the page shows about predictions/, from one pass."""

  def __init__(self, path: str, samples: bool = True):
    self.path, self.samples = path, samples
    self.rows = 0
    self.labels = Codes()
    self.counts = np.zeros(0, np.int64)
    self.score_hist = np.zeros(SCORE_BINS, np.int64)
    self.under_half = 0
    self.norms = {'count': 0, 'sum': 0.0, 'sumsq': 0.0, 'min': np.inf, 'max': -np.inf, 'non_finite': 0}
    self.by_label, self.lowest, self.map_sample = Keep(PER_LABEL), Keep(LOWEST), Keep(MAP_SAMPLE)
    self._rng = np.random.default_rng(_SEED)
    data = dataset(path)
    self.schema = data.schema
    self.label_column = top1_label_column(self.schema)
    self.has_scores = 'top_scores' in self.schema.names
    self.embedding_column = 'embedding' if 'embedding' in self.schema.names else None
    self.map_column = 'embedding_pca' if 'embedding_pca' in self.schema.names else self.embedding_column
    wanted = ['id', 'source'] + [c for c in (self.label_column, 'top_scores' if self.has_scores else None,
                                             self.embedding_column) if c]
    if self.map_column != self.embedding_column and samples:
      wanted.append(self.map_column)
    for batch in batches(data, wanted):
      self._add(batch)

  def _add(self, batch: pa.RecordBatch) -> None:
    n = batch.num_rows
    self.rows += n
    if not n:
      return
    keys = self._rng.random(n)
    codes = scores = None
    payload = {'id': batch.column('id'), 'source': batch.column('source')}
    if self.label_column:
      codes = self.labels.encode(top1_strings(batch, self.label_column))
      self.counts = np.bincount(codes, minlength=len(self.labels.names)) + np.pad(
          self.counts, (0, len(self.labels.names) - len(self.counts)))
      payload['label'] = pa.array(codes, pa.int32())
    if self.has_scores:
      scores = pc.list_element(batch.column('top_scores'), 0).to_numpy(zero_copy_only=False).astype(np.float64)
      self.score_hist += np.histogram(scores, bins=SCORE_BINS, range=(0.0, 1.0))[0]
      self.under_half += int(np.count_nonzero(scores < 0.5))
      payload['score'] = pa.array(scores, pa.float32())
    if self.embedding_column:
      self._add_norms(batch.column(self.embedding_column))
    if not self.samples:
      return
    small = pa.table(payload)
    if codes is not None:
      self.by_label.offer(small, keys, codes)
    if scores is not None:
      self.lowest.offer(small, scores + keys * 1e-9)
    if self.map_column:
      self.map_sample.offer(small.append_column('vector', batch.column(self.map_column)), keys)

  def _add_norms(self, column: pa.Array) -> None:
    lengths = pc.list_value_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
    lengths = lengths[lengths > 0]
    if len(lengths) and (lengths == lengths[0]).all():  # the usual case: one embedding size
      matrix = values.reshape(len(lengths), int(lengths[0]))
      norms = np.sqrt(np.einsum('ij,ij->i', matrix, matrix, dtype=np.float64))
    else:
      norms = np.sqrt(np.add.reduceat(values.astype(np.float64) ** 2, np.r_[0, np.cumsum(lengths)[:-1]])) \
          if len(lengths) else np.zeros(0)
    finite = np.isfinite(norms)
    s = self.norms
    s['non_finite'] += int(np.count_nonzero(~finite))
    norms = norms[finite]
    if len(norms):
      s['count'] += len(norms)
      s['sum'] += float(norms.sum())
      s['sumsq'] += float((norms * norms).sum())
      s['min'], s['max'] = min(s['min'], float(norms.min())), max(s['max'], float(norms.max()))

  def label_counts(self) -> List[tuple]:
    """(label, count) for every label, most frequent first (ties by name)."""
    return sorted(zip(self.labels.names, self.counts.tolist()), key=lambda item: (-item[1], item[0]))

  def norm_stats(self) -> dict:
    s = self.norms
    if not s['count']:
      return {'count': 0, 'non_finite': s['non_finite']}
    mean = s['sum'] / s['count']
    return {'count': s['count'], 'mean': mean, 'std': max(s['sumsq'] / s['count'] - mean * mean, 0.0) ** 0.5,
            'min': s['min'], 'max': s['max'], 'non_finite': s['non_finite']}


class Errors:
  """errors/: exact counts by stage and error type, and the first few rows of each."""

  def __init__(self, path: str):
    self.kinds = Codes()
    self.counts = np.zeros(0, np.int64)
    self.examples = Keep(ERROR_EXAMPLES)
    self.rows = 0
    for batch in batches(dataset(path), ['id', 'source', 'stage', 'error_type', 'message']):
      if not batch.num_rows:
        continue
      kinds = pc.binary_join_element_wise(batch.column('stage').fill_null(''),
                                          batch.column('error_type').fill_null(''), '\x1f')
      codes = self.kinds.encode(kinds)
      self.counts = np.bincount(codes, minlength=len(self.kinds.names)) + np.pad(
          self.counts, (0, len(self.kinds.names) - len(self.counts)))
      self.examples.offer(pa.Table.from_batches([batch]), np.arange(self.rows, self.rows + batch.num_rows), codes)
      self.rows += batch.num_rows

  def by_kind(self) -> List[dict]:
    """[{stage, error_type, count, examples: [row, ...]}], by stage then most frequent first."""
    rows = self.examples.table().to_pylist()
    out = []
    for code, (name, count) in enumerate(zip(self.kinds.names, self.counts.tolist())):
      stage, error_type = name.split('\x1f', 1)
      examples = [r for r in rows if r['_group'] == code]
      out.append({'stage': stage, 'error_type': error_type, 'count': count, 'examples': examples})
    return sorted(out, key=lambda kind: (kind['stage'], -kind['count'], kind['error_type']))

  def by_stage(self) -> Dict[str, int]:
    stages: Dict[str, int] = {}
    for kind in self.by_kind():
      stages[kind['stage']] = stages.get(kind['stage'], 0) + kind['count']
    return stages
