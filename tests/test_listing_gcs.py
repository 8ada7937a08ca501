"""The gs:// listing cut into key ranges by one-name list requests (startOffset), and each range listed with
startOffset/endOffset, on both emulators: every object once, in name order, as Beam's match gives them (on
gcp-storage-emulator, which ignores startOffset, as one range)."""
import random

import pytest
from apache_beam.io.filesystems import FileSystems

from tests import gcs
from transforms.read import listing

pytestmark = pytest.mark.full


def _names():
  rng = random.Random(5)
  names = ['a.jpg', 'ab.jpg', 'sub/c.jpg', 'sub-x/f.jpg', 'sub.jpg', 'sub0/g.jpg', 'folder/', 'caf\u00e9.jpg']
  return names + [f'{i:03d}/{j:04d}.jpg' for i in range(12) for j in range(rng.randint(0, 30))]


def _check(prefix: str, offsets: bool = True):
  """`offsets`: the server keeps startOffset (gcp-storage-emulator ignores it: then one range, listed whole)."""
  whole = [(f.path, f.size_in_bytes) for f in listing.files(f'{prefix}/**')]
  assert whole == sorted(whole) and len(whole) == len(_names()) - 1  # 'folder/' is a placeholder, not a file
  assert whole == sorted((m.path, m.size_in_bytes) for m in FileSystems.match([f'{prefix}/**'])[0].metadata_list
                         if not m.path.endswith('/'))  # Beam's match gives the placeholder too
  for shards, every in ((1, 1), (8, 1), (64, 1), (64, 20)):
    ranges = listing.split(f'{prefix}/**', shards, every)
    parts = [[f.path for f in listing.files(f'{prefix}/**', lo=lo, hi=hi)] for lo, hi in ranges]
    assert [p for part in parts for p in part] == [path for path, _ in whole], (shards, every)
    if not offsets:
      assert len(ranges) == 1 or len(whole) <= shards * every
    elif len(whole) > shards * every:
      assert len(ranges) == shards and (shards < 8 or max(map(len, parts)) < len(whole) / 2), ranges


def _upload(bucket: str):
  client = gcs._client()  # pylint: disable=protected-access
  for name in _names():
    client.bucket(bucket).blob(f'in/{name}').upload_from_string(b'x' * len(name))
  return f'gs://{bucket}/in'


def test_gcs_listing_ranges_on_gcp_storage_emulator(gcs_emulator):  # pylint: disable=unused-argument
  _check(_upload(gcs.new_bucket()), offsets=False)


def test_gcs_listing_ranges_on_fake_gcs_server(monkeypatch):
  with gcs.fake_gcs_server() as server:
    monkeypatch.setenv('STORAGE_EMULATOR_HOST', server)
    _check(_upload(gcs.new_bucket()))
