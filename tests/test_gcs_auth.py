"""--no_auth: gs:// clients are anonymous without a credentials lookup, in the launcher and on workers."""
import subprocess
import sys

from apache_beam.io.gcp import gcsio
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions
from google.auth.credentials import AnonymousCredentials

from transforms import gcs_auth


def test_no_auth_client_is_anonymous_and_never_looks_for_credentials(monkeypatch):
  def no_lookup(_):
    raise AssertionError('looked for Google credentials despite --no_auth')

  monkeypatch.setattr(gcsio.auth, 'get_service_credentials', no_lookup)
  gcs_auth.install()
  client = gcsio.create_storage_client(PipelineOptions(['--no_auth']))
  assert isinstance(client._credentials, AnonymousCredentials)  # pylint: disable=protected-access


def test_workers_get_it_as_a_beam_plugin():
  options = PipelineOptions(['--no_auth'])
  gcs_auth.apply(options)
  assert options.view_as(SetupOptions).beam_plugins == ['transforms.gcs_auth']
  plain = PipelineOptions([])
  gcs_auth.apply(plain)
  assert not plain.view_as(SetupOptions).beam_plugins
  # A worker imports its plugins at start-up; the import alone installs the behaviour.
  code = ('import transforms.gcs_auth; from apache_beam.io.gcp import gcsio; '
          'print(gcsio.create_storage_client.__module__)')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
  assert proc.stdout.strip() == 'transforms.gcs_auth'
