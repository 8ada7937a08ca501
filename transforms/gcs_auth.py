"""Makes Beam's --no_auth give gs:// paths an anonymous client, as its help promises.

Beam 2.77's GcsIO builds its client with gcsio.create_storage_client(options),
which always asks google.auth for default credentials; --no_auth only reaches
the Dataflow API client. Where there are none, each process then spends about
20 s in retries before falling back to an anonymous client. Public buckets and
GCS emulators (STORAGE_EMULATOR_HOST, honored by google-cloud-storage) need no
credentials, so with --no_auth we skip the lookup. Workers import this module
at start-up as a Beam plugin, which installs the same behaviour there.
"""
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp import gcsio
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, SetupOptions

_original = gcsio.create_storage_client


def _create_storage_client(pipeline_options, use_credentials=True):
  no_auth = pipeline_options.view_as(GoogleCloudOptions).no_auth
  return _original(pipeline_options, use_credentials and not no_auth)


def install() -> None:
  gcsio.create_storage_client = _create_storage_client


def apply(options: PipelineOptions) -> None:
  """In the launcher: filesystem calls use these options, and workers get the same client behaviour."""
  install()
  FileSystems.set_options(options)
  if options.view_as(GoogleCloudOptions).no_auth:
    setup = options.view_as(SetupOptions)
    setup.beam_plugins = sorted(set(setup.beam_plugins or []) | {__name__})


install()  # on import, which is how workers (Beam plugins) get it
