"""Assembles the job: read -> decode -> infer -> format [-> analyze] -> write -> commit, errors beside.

Beside the main line: checkpoints of finished rows (for --resume), what an
earlier run finished when resuming, and the tally of every record, which the
commit step writes into summary.json.
"""
from typing import Dict, List, Optional

import apache_beam as beam

from pipeline.options import JobConfig
from transforms import output, records, resume, write
from transforms.decode import DecodeImages
from transforms.format import FormatRows
from transforms.inference import ImageModelHandler, Infer
from transforms.models import ModelInfo
from transforms.read import InputPlan, ReadImages


def _skip_done(items, label: str, done, tallies: list):
  kept = items | label >> beam.ParDo(resume.SkipDone(), done).with_outputs(resume.SKIPPED_TAG, main='kept')
  tallies.append(kept[resume.SKIPPED_TAG])
  return kept.kept


def build(p: beam.Pipeline, config: JobConfig, info: ModelInfo, inputs: InputPlan, layout: output.Layout,
          previous: Optional[Dict[str, List[str]]] = None) -> None:
  spec = config.model
  read = p | 'Read' >> ReadImages(inputs)
  images, read_errors = read['images'], read[records.ERRORS_TAG]
  tallies = [output.count_as(images, 'TallyRead', output.READ),
             output.count_as(read_errors, 'TallyReadErrors', output.READ)]
  passthrough = [(c.name, c.arrow_type) for c in inputs.settings.columns]
  schema = write.prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough)
  earlier = {}
  if previous and any(previous.values()):  # --resume over an output with finished work
    columns = {write.PREDICTIONS_DIR: schema.names, write.ERRORS_DIR: write.ERROR_SCHEMA.names}
    earlier = {name: p | f'Previous_{name}' >> resume.ReadPrevious(previous[name], columns[name])
               for name in output.DATASETS}
    done = resume.done_keys(earlier.values())
    images = _skip_done(images, 'SkipDone', done, tallies)
    read_errors = _skip_done(read_errors, 'SkipDoneErrors', done, tallies)
  decode = DecodeImages(info.input_size, config.resize_method, config.max_image_pixels)
  decoded = images | 'Decode' >> beam.ParDo(decode).with_outputs(records.ERRORS_TAG, main='images')
  handler = ImageModelHandler(spec, config.min_batch_size, config.max_batch_size)
  inferred = decoded.images | 'Infer' >> Infer(handler)
  rows = inferred['predictions'] | 'Format' >> beam.ParDo(FormatRows(spec.location, config.top_k, config.labels,
                                                                       config.progress_seconds, info.num_classes))
  errors = ((read_errors, decoded[records.ERRORS_TAG], inferred[records.ERRORS_TAG])
            | 'AllErrors' >> beam.Flatten()
            | 'CountErrors' >> beam.ParDo(write.CountErrors()))
  _ = rows | 'CheckpointRows' >> beam.ParDo(
      resume.Checkpoint(layout.checkpoints(write.PREDICTIONS_DIR), schema, config.checkpoint_rows))
  _ = errors | 'CheckpointErrors' >> beam.ParDo(
      resume.Checkpoint(layout.checkpoints(write.ERRORS_DIR), write.ERROR_SCHEMA, config.checkpoint_rows))
  if earlier:
    tallies += [output.count_as(pcoll, f'TallyCarried_{name}', f'{output.CARRIED}/{name}')
                for name, pcoll in earlier.items()]
    rows = (rows, earlier[write.PREDICTIONS_DIR]) | 'WithEarlierRows' >> beam.Flatten()
    errors = (errors, earlier[write.ERRORS_DIR]) | 'WithEarlierErrors' >> beam.Flatten()
  after = []
  if config.analysis:  # the only change to the main line; without it the job is unchanged
    from transforms import analyze  # pylint: disable=import-outside-toplevel  # tf.Transform only when asked
    step = analyze.AnalyzeEmbeddings(config.output, info.embedding_dim, config.analysis.pca_dims,
                                     config.analysis.whiten, config.analysis.temp_dir)
    rows = rows | 'AnalyzeEmbeddings' >> step
    schema = write.prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels), passthrough,
                                     step.columns)
    after.append(step.statistics_written)
  written = [rows | 'WritePredictions' >> write.WriteParquet(layout.staging(write.PREDICTIONS_DIR), schema,
                                                             config.num_shards, layout.shard_name),
             errors | 'WriteErrors' >> write.WriteParquet(layout.staging(write.ERRORS_DIR), write.ERROR_SCHEMA,
                                                          config.num_shards, layout.shard_name)]
  tallies += [output.count_as(rows, 'TallyRows', output.ROWS),
              output.count_as(errors, 'TallyErrors', lambda error: output.ERRORS_PREFIX + error['stage']),
              rows | 'DuplicateIds' >> output.DuplicateIds()]
  tally = tuple(tallies) | 'AllCounts' >> beam.Flatten() | 'Tally' >> output.Tally()
  _ = p | 'CommitOutput' >> output.CommitOutput(layout, tally, written + after)
