"""Assembles the job: read -> decode -> infer -> format [-> analyze] -> write, errors beside."""
import apache_beam as beam

from pipeline.options import JobConfig
from transforms import records, write
from transforms.decode import DecodeImages
from transforms.format import FormatRows
from transforms.inference import ImageModelHandler, Infer
from transforms.models import ModelInfo
from transforms.read import InputPlan, ReadImages


def build(p: beam.Pipeline, config: JobConfig, info: ModelInfo, inputs: InputPlan) -> None:
  spec = config.model
  read = p | 'Read' >> ReadImages(inputs)
  decode = DecodeImages(info.input_size, config.resize_method)
  decoded = read['images'] | 'Decode' >> beam.ParDo(decode).with_outputs(records.ERRORS_TAG, main='images')
  handler = ImageModelHandler(spec, config.min_batch_size, config.max_batch_size)
  inferred = decoded.images | 'Infer' >> Infer(handler)
  rows = inferred['predictions'] | 'Format' >> beam.ParDo(FormatRows(spec.location, config.top_k, config.labels,
                                                                       config.progress_seconds, info.num_classes))
  reduced = ()
  if config.analysis:  # the only change to the graph; without it the job is unchanged
    from transforms import analyze  # pylint: disable=import-outside-toplevel  # tf.Transform only when asked
    step = analyze.AnalyzeEmbeddings(config.output, info.embedding_dim, config.analysis.pca_dims,
                                     config.analysis.whiten, config.analysis.temp_dir)
    rows = rows | 'AnalyzeEmbeddings' >> step
    reduced = step.columns
  schema = write.prediction_schema(spec.wants_classes, spec.wants_embedding, bool(config.labels),
                                   [(c.name, c.arrow_type) for c in inputs.settings.columns], reduced)
  _ = rows | 'WritePredictions' >> write.WriteParquet(config.output, write.PREDICTIONS_DIR, schema,
                                                      config.num_shards)
  errors = ((read[records.ERRORS_TAG], decoded[records.ERRORS_TAG], inferred[records.ERRORS_TAG])
            | 'AllErrors' >> beam.Flatten()
            | 'CountErrors' >> beam.ParDo(write.CountErrors()))
  _ = errors | 'WriteErrors' >> write.WriteParquet(config.output, write.ERRORS_DIR, write.ERROR_SCHEMA,
                                                   config.num_shards)
