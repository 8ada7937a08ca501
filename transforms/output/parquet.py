"""The analysis' write: rows with their reduced columns -> Parquet shards in the run's staging folder.

Without --analyze_embeddings each read unit writes its own parts (write_units.py, markers.py). With it, the
rows of every unit are read back once the analysis is done, given their columns and written here as
predictions/ shards, which the commit step (commit.py) moves into place instead of the units' parts.
"""
import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems


class WriteParquet(beam.PTransform):
  """Beam's WriteToParquet into `directory`; returns the paths of the shards once all are finalized."""

  def __init__(self, directory: str, schema: pa.Schema, name: str = 'part'):
    super().__init__()
    self._prefix = FileSystems.join(directory, name)
    self._schema = schema

  def expand(self, rows):
    return rows | beam.io.WriteToParquet(self._prefix, self._schema, file_name_suffix='.parquet')
