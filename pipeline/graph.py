"""Assembles the job: plan units -> [skip committed ones] -> read -> decode -> infer -> format -> write units ->
commit, on one fused line per input format from planning to write, [-> analyze] before the commit.

Beside the lines: the committed units' markers (a side input, transforms/output/resume.py), and the tally of
the committed units' markers, which the commit step checks and writes into summary.json.
"""
from typing import Optional

import apache_beam as beam

from pipeline.options import JobConfig
from transforms.decode import DecodeImages
from transforms.format import FormatRows
from transforms.infer.handler import ImageModelHandler, Infer
from transforms.infer.models import ModelInfo
from transforms.output import resume, tally
from transforms.output.commit import CommitOutput
from transforms.output.keep_lease import KeepLease
from transforms.output.layout import ERRORS_DIR, PREDICTIONS_DIR, Layout
from transforms.output.parquet import WriteParquet
from transforms.output.schema import ERROR_SCHEMA, prediction_schema
from transforms.output.vectors import Vectors
from transforms.output.write_units import IDS_TAG, WriteUnits
from transforms.read import readers
from transforms.read.plan import InputPlan


class _Analyzed(beam.PTransform):
  """Committed units' markers -> their rows read back, with the analysis' columns, as predictions/ shards staged
  for the commit (the analysis needs every embedding before it can give one row its columns)."""

  def __init__(self, layout: Layout, step, schema):
    super().__init__()
    self._layout, self._step, self._schema = layout, step, schema

  def expand(self, markers):
    layout = self._layout
    rows = [kept | f'Spread_{i}' >> beam.Reshuffle() | f'CommittedRows_{i}' >> beam.ParDo(resume.ReadCommitted(layout))
            for i, kept in enumerate(markers)]
    return (tuple(rows)
            | 'AllRows' >> beam.Flatten()
            | 'Analyze' >> self._step
            | 'Write' >> WriteParquet(layout.staging(PREDICTIONS_DIR), self._schema, layout.shard_name))


class _Line(beam.PTransform):
  """One format's planned units -> skip the committed -> read -> decode -> infer -> format -> write units, fused
  on the worker that planned them (image units: the one that listed their files); returns (this run's
  markers, the skipped units' markers, the rows' ids). A job over several formats has a line for each (and a
  model per line in each worker): a Flatten before the reader would make the local runner hold every unit."""

  def __init__(self, config: JobConfig, info: ModelInfo, inputs: InputPlan, layout: Layout, schema, committed,
               vectors: Optional[Vectors]):
    super().__init__()
    self._config, self._info, self._inputs, self._layout = config, info, inputs, layout
    self._schema, self._committed, self._vectors = schema, committed, vectors

  def expand(self, planned):
    config, info, inputs, layout, spec = self._config, self._info, self._inputs, self._layout, self._config.model
    joined = planned | 'SkipCommitted' >> resume.SkipCommitted(layout, self._committed)
    formatted = (joined['units']
                 | 'KeepLease' >> beam.ParDo(KeepLease(config.output, layout.run_id))  # on every worker that reads
                 | 'Read' >> beam.ParDo(readers.read_units(inputs))
                 | 'Decode' >> beam.ParDo(DecodeImages(info.input_size, config.resize_method, config.max_image_pixels,
                                                       config.decode_timeout_seconds))
                 | 'Infer' >> Infer(ImageModelHandler(spec, config.min_batch_size, config.max_batch_size,
                                                      config.inference_timeout_seconds, config.model_copies))
                 | 'Format' >> beam.ParDo(FormatRows(spec.location, config.top_k, config.labels,
                                                     config.progress_seconds, info.num_classes, self._vectors)))
    write = formatted | 'WriteUnits' >> beam.ParDo(
        WriteUnits(layout, {PREDICTIONS_DIR: self._schema, ERRORS_DIR: ERROR_SCHEMA})).with_outputs(IDS_TAG,
                                                                                                     main='markers')
    # A PCollection of its own (as resume.SkipCommitted does for the skipped): as a side input, the output of a
    # multi-output DoFn gets its other outputs too on Beam's BundleBasedDirectRunner (2.77; test_retries.py).
    written, skipped = write.markers | 'Written' >> beam.Map(lambda marker: marker), joined[resume.SKIPPED_TAG]
    ids = (write[IDS_TAG], skipped | 'SkippedIds' >> beam.ParDo(resume.CommittedIds(layout))) | 'AllIds' >> beam.Flatten()
    return written, skipped, ids


def build(p: beam.Pipeline, config: JobConfig, info: ModelInfo, inputs: InputPlan, layout: Layout,
          resuming: bool = False) -> None:
  spec = config.model
  passthrough = [(c.name, c.arrow_type) for c in inputs.settings.columns]
  vectors = Vectors(info.embedding_dim, config.embedding_dtype, config.normalize_embeddings) \
      if spec.wants_embedding else None
  schema = prediction_schema(spec.wants_classes, vectors, bool(config.labels), passthrough, model=spec.location)
  layout = layout._replace(analysis=config.analysis is not None)

  planned, left_out = p | 'Plan' >> readers.PlanInputs(inputs, config.files_per_unit)
  committed = resume.committed_markers(p, layout)
  lines = [units | f'Line_{fmt}' >> _Line(config, info, inputs, layout, schema, committed, vectors)
           for fmt, units in planned.items()]
  markers = tuple(m for written, skipped, _ in lines for m in (written, skipped))  # the units the output keeps
  # (side inputs each: a Flatten of them gave None on Flink)
  counted = [pcoll for i, (written, kept, _) in enumerate(lines) for pcoll in (
      written | f'CountWritten_{i}' >> beam.FlatMap(tally.marker_counts, resumed=resuming),
      kept | f'CountSkipped_{i}' >> beam.FlatMap(tally.marker_counts, skipped=True))]
  counted += [files | f'CountSkippedFiles_{i}' >> beam.FlatMap(tally.skipped_file_counts)  # not the format's
              for i, files in enumerate(left_out)]
  ids = tuple(ids for _, _, ids in lines) | 'AllIds' >> beam.Flatten()
  counts = tuple(counted + [ids | 'DuplicateIds' >> tally.DuplicateIds()]) | 'Tally' >> tally.Tally()

  after, scratch = [], []  # the commit waits for every unit anyway: their markers are its side inputs
  if config.analysis:  # the rows wait for every unit, then the analysis writes predictions/ with its columns
    from transforms.analyze import embeddings  # pylint: disable=import-outside-toplevel  # tf.Transform if asked
    analysis = config.analysis
    step = embeddings.AnalyzeEmbeddings(config.output, info.embedding_dim, analysis.pca_dims, analysis.whiten,
                                        analysis.temp_dir)
    schema = prediction_schema(spec.wants_classes, vectors, bool(config.labels), passthrough, step.columns,
                               analysis.pca_dims, spec.location)
    after += [markers | 'AnalyzeEmbeddings' >> _Analyzed(layout, step, schema), step.statistics_written]
    scratch.append(analysis.temp_dir)  # deleted by the commit step, on every runner and filesystem
  _ = p | 'CommitOutput' >> CommitOutput(layout, {PREDICTIONS_DIR: schema, ERRORS_DIR: ERROR_SCHEMA}, counts,
                                         markers, after, scratch)
