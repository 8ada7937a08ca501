"""Assembles the job: read -> decode -> infer -> format [-> analyze] -> write -> commit, errors beside.

Beside the main line, each its own transform: resume (skip what earlier runs
finished, carry their rows, checkpoint this run's) and the tally of every
record, which the commit step checks the shards against and writes into
summary.json.
"""
from typing import Dict, List, Optional

import apache_beam as beam

from pipeline.options import JobConfig
from transforms import elements
from transforms.decode import DecodeImages
from transforms.format import ErrorRows, FormatRows
from transforms.infer.handler import ImageModelHandler, Infer
from transforms.infer.models import ModelInfo
from transforms.output import resume, tally
from transforms.output.commit import CommitOutput
from transforms.output.keep_lease import KeepLease
from transforms.output.layout import ERRORS_DIR, PREDICTIONS_DIR, Layout
from transforms.output.parquet import WriteParquet
from transforms.output.schema import ERROR_SCHEMA, prediction_schema
from transforms.read.plan import InputPlan
from transforms.read.readers import ReadImages
from transforms.read.retry import UNREAD_TAG


def build(p: beam.Pipeline, config: JobConfig, info: ModelInfo, inputs: InputPlan, layout: Layout,
          previous: Optional[Dict[str, List[str]]] = None) -> None:
  spec = config.model
  passthrough = [(c.name, c.arrow_type) for c in inputs.settings.columns]
  schema = prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough)
  earlier = None
  if previous and any(previous.values()):  # --resume over an output with finished work
    earlier = p | 'Earlier' >> resume.ReadEarlier(previous, {PREDICTIONS_DIR: schema.names,
                                                             ERRORS_DIR: ERROR_SCHEMA.names})
  counted = []  # tally keys, from wherever something is counted

  read = p | 'Read' >> ReadImages(inputs)
  images, read_errors = read['images'], read[elements.ERRORS_TAG]
  images = images | 'KeepLease' >> beam.ParDo(KeepLease(config.output, layout.run_id))  # on every worker
  counted += [tally.count_as(images, 'TallyRead', tally.READ),
              tally.count_as(read_errors, 'TallyReadErrors', tally.READ),
              tally.count_as(read[UNREAD_TAG], 'TallyUnread', tally.unread_key)]
  if earlier:
    images, read_errors, skipped = (images, read_errors) | 'SkipDone' >> resume.SkipDone(earlier)
    counted.append(skipped)

  decoded = images | 'Decode' >> beam.ParDo(
      DecodeImages(info.input_size, config.resize_method, config.max_image_pixels,
                   config.decode_timeout_seconds)).with_outputs(elements.ERRORS_TAG, main='images')
  inferred = decoded.images | 'Infer' >> Infer(ImageModelHandler(spec, config.min_batch_size, config.max_batch_size,
                                                                 config.inference_timeout_seconds))
  rows = inferred['predictions'] | 'Format' >> beam.ParDo(
      FormatRows(spec.location, config.top_k, config.labels, config.progress_seconds, info.num_classes))
  errors = ((read_errors, decoded[elements.ERRORS_TAG], inferred[elements.ERRORS_TAG])
            | 'AllErrors' >> beam.Flatten()
            | 'ErrorRows' >> beam.ParDo(ErrorRows()))

  _ = (rows, errors) | 'Checkpoint' >> resume.CheckpointRows(
      layout, {PREDICTIONS_DIR: schema, ERRORS_DIR: ERROR_SCHEMA}, config.checkpoint_rows)
  if earlier:
    rows, errors, carried = (rows, errors) | 'WithEarlier' >> resume.WithEarlier(earlier)
    counted.append(carried)

  after, scratch = [], []
  if config.analysis:  # the only change to the main line; without it the job is unchanged
    from transforms.analyze import embeddings  # pylint: disable=import-outside-toplevel  # tf.Transform if asked
    analysis = config.analysis
    step = embeddings.AnalyzeEmbeddings(config.output, info.embedding_dim, analysis.pca_dims, analysis.whiten,
                                        analysis.temp_dir)
    rows = rows | 'AnalyzeEmbeddings' >> step
    schema = prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough,
                               step.columns)
    after.append(step.statistics_written)
    scratch.append(analysis.temp_dir)  # deleted by the commit step, on every runner and filesystem

  written = [rows | 'WritePredictions' >> WriteParquet(layout.staging(PREDICTIONS_DIR), schema, config.num_shards,
                                                       layout.shard_name),
             errors | 'WriteErrors' >> WriteParquet(layout.staging(ERRORS_DIR), ERROR_SCHEMA, config.num_shards,
                                                    layout.shard_name)]
  counted += [tally.count_as(rows, 'TallyRows', tally.ROWS),
              tally.count_as(errors, 'TallyErrors', tally.error_key),
              rows | 'DuplicateIds' >> tally.DuplicateIds()]
  counts = tuple(counted) | 'Tally' >> tally.Tally()
  _ = p | 'CommitOutput' >> CommitOutput(layout, counts, written + after, scratch)
