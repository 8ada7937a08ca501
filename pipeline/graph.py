"""Assembles the job: plan units -> [skip committed ones] -> read -> decode -> infer -> format -> write units ->
commit, on one fused line from read to write, [-> analyze] before the commit.

Beside the main line: the join that skips the units earlier runs committed
(transforms/output/resume.py), and the tally of the committed units' markers,
which the commit step checks and writes into summary.json.
"""
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
            | 'Write' >> WriteParquet(layout.staging(PREDICTIONS_DIR), self._schema, 0, layout.shard_name))


def build(p: beam.Pipeline, config: JobConfig, info: ModelInfo, inputs: InputPlan, layout: Layout,
          resuming: bool = False) -> None:
  spec = config.model
  passthrough = [(c.name, c.arrow_type) for c in inputs.settings.columns]
  schema = prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough)
  layout = layout._replace(analysis=config.analysis is not None)

  planned = p | 'Plan' >> readers.PlanInputs(inputs, config.image_groups)
  joined = planned | 'SkipCommitted' >> resume.JoinUnits(layout)
  formatted = (joined['units']
               | 'Spread' >> beam.Reshuffle()  # units only, never image bytes: spreads the reading over workers
               | 'KeepLease' >> beam.ParDo(KeepLease(config.output, layout.run_id))  # on every worker that reads
               | 'Read' >> beam.ParDo(readers.read_units(inputs))
               | 'Decode' >> beam.ParDo(DecodeImages(info.input_size, config.resize_method, config.max_image_pixels,
                                                     config.decode_timeout_seconds))
               | 'Infer' >> Infer(ImageModelHandler(spec, config.min_batch_size, config.max_batch_size,
                                                    config.inference_timeout_seconds, config.model_copies))
               | 'Format' >> beam.ParDo(FormatRows(spec.location, config.top_k, config.labels,
                                                   config.progress_seconds, info.num_classes)))
  write = formatted | 'WriteUnits' >> beam.ParDo(
      WriteUnits(layout, {PREDICTIONS_DIR: schema, ERRORS_DIR: ERROR_SCHEMA})).with_outputs(IDS_TAG, main='markers')
  # A PCollection of its own (as resume.JoinUnits does for the skipped): as a side input, the output of a
  # multi-output DoFn gets its other outputs too on Beam's BundleBasedDirectRunner (2.77; test_retries.py).
  written, skipped = write.markers | 'Written' >> beam.Map(lambda marker: marker), joined[resume.SKIPPED_TAG]
  markers = (written, skipped)  # the units the output keeps (side inputs: a Flatten of them gave None on Flink)
  ids = (write[IDS_TAG], skipped | 'SkippedIds' >> beam.ParDo(resume.CommittedIds(layout))) | 'AllIds' >> beam.Flatten()
  counted = [written | 'CountWritten' >> beam.FlatMap(tally.marker_counts, resumed=resuming),
             skipped | 'CountSkipped' >> beam.FlatMap(tally.marker_counts, skipped=True),
             ids | 'DuplicateIds' >> tally.DuplicateIds()]
  counts = tuple(counted) | 'Tally' >> tally.Tally()

  after, scratch = [], []  # the commit waits for every unit anyway: their markers are its side inputs
  if config.analysis:  # the rows wait for every unit, then the analysis writes predictions/ with its columns
    from transforms.analyze import embeddings  # pylint: disable=import-outside-toplevel  # tf.Transform if asked
    analysis = config.analysis
    step = embeddings.AnalyzeEmbeddings(config.output, info.embedding_dim, analysis.pca_dims, analysis.whiten,
                                        analysis.temp_dir)
    schema = prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough,
                               step.columns)
    after += [markers | 'AnalyzeEmbeddings' >> _Analyzed(layout, step, schema), step.statistics_written]
    scratch.append(analysis.temp_dir)  # deleted by the commit step, on every runner and filesystem
  _ = p | 'CommitOutput' >> CommitOutput(layout, {PREDICTIONS_DIR: schema, ERRORS_DIR: ERROR_SCHEMA}, counts,
                                         markers, after, scratch)
