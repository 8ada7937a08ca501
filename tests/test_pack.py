"""The packer: shards that TF and tarfile read back, with the job's ids and the files' bytes unchanged."""
import json
import shutil
import subprocess
import sys
import tarfile

import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline import pack
from tests import datagen, gcs
from transforms import gcs_auth


@pytest.fixture(name='folder')
def folder_fixture(tmp_path):
  """Photos in a folder with a subfolder, and a file that is not an image."""
  return datagen.photo_folder(tmp_path, {'notes.md': 'not an image'})


def _expected(folder):
  return {str(p.relative_to(folder).with_suffix('')): p.read_bytes()
          for p in folder.rglob('*') if p.suffix in ('.jpg', '.bmp')}


def test_command_line_packs_a_folder_into_gzip_tfrecord_shards(tmp_path, folder):
  proc = subprocess.run([sys.executable, '-m', 'pipeline.pack', '--input', str(folder), '--output',
                         str(tmp_path / 'out' / 'photos'), '--format', 'tfrecord', '--compression', 'gzip',
                         '--images_per_shard', '4'], capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  printed = json.loads(proc.stdout)
  assert printed['images'] == 6
  assert printed['shards'] == [str(tmp_path / 'out' / f'photos-0000{i}-of-00002.tfrecord.gz') for i in range(2)]
  spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ('image/encoded', 'image/id', 'image/filename')}
  found = {}
  for record in tf.data.TFRecordDataset(printed['shards'], compression_type='GZIP'):
    example = tf.io.parse_single_example(record, spec)
    found[example['image/id'].numpy().decode()] = example['image/encoded'].numpy()
    name, image_id = example['image/filename'].numpy().decode(), example['image/id'].numpy().decode()
    assert name.startswith(image_id.split('/')[-1] + '.')
  assert found == _expected(folder)
  assert 'sub/hot_dog' in found


def test_tar_shards_hold_id_dot_extension_members(tmp_path, folder):
  packed = pack.pack([f'{folder}/*.bmp', f'{folder}/sub/*'], str(tmp_path / 'photos'), 'tar', images_per_shard=10)
  assert packed.images == 6 and len(packed.shards) == 1
  with tarfile.open(packed.shards[0]) as tar:
    members = {m.name: tar.extractfile(m).read() for m in tar}
  expected = {p.name: p.read_bytes() for p in folder.rglob('*') if p.suffix in ('.jpg', '.bmp')}
  assert members == expected  # ids from two globs: each under its own base


@pytest.mark.parametrize('patterns, fmt, words', [
    (['{folder}/*', '{folder}/sub/*'], 'tfrecord', "two inputs have the id 'hot_dog'"),
    (['{folder}/nothing/*'], 'tfrecord', 'matches no image files'),
    (['{folder}/dotted/*'], 'tar', 'WebDataset keys cannot contain dots'),
])
def test_refuses_ambiguous_or_empty_inputs(tmp_path, folder, patterns, fmt, words):
  (folder / 'dotted').mkdir()
  (folder / 'dotted' / 'a.v2.jpg').write_bytes(b'x')
  shutil.copy(folder / 'sub' / 'hot_dog.jpg', folder / 'hot_dog.jpg')
  with pytest.raises(pack.PackError, match=words):
    pack.pack([p.format(folder=folder) for p in patterns], str(tmp_path / 'x'), fmt)


def test_bad_option_exits_2(tmp_path, folder):
  proc = subprocess.run([sys.executable, '-m', 'pipeline.pack', '--input', str(folder), '--output',
                         str(tmp_path / 'x'), '--format', 'zip'], capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 2 and '--format must be one of tfrecord, tar, parquet' in proc.stderr


@pytest.mark.usefixtures('gcs_emulator')
def test_packs_to_gcs(folder):
  gcs_auth.apply(PipelineOptions(['--no_auth']))
  bucket = gcs.new_bucket()
  packed = pack.pack([str(folder)], f'gs://{bucket}/shards/photos', 'tar', images_per_shard=3)
  assert gcs.list_uris(f'gs://{bucket}/shards/') == packed.shards == [
      f'gs://{bucket}/shards/photos-0000{i}-of-00002.tar' for i in range(2)]


def test_parse_pack_keeps_beam_options_and_refuses_unknown_ones(tmp_path, capsys):
  config = pack.parse_pack(['--input', 'a,b/*', '--output', 'out/x', '--no_auth', '--compression', 'gzip'])
  assert config == pack.PackConfig(inputs=('a', 'b/*'), output='out/x', format='tfrecord',
                                   images_per_shard=pack.DEFAULT_IMAGES_PER_SHARD, gzip=True,
                                   pipeline_options=config.pipeline_options)
  assert config.pipeline_options.view_as(GoogleCloudOptions).no_auth is True
  # A typo would otherwise be dropped and the default used: refused, with the closest option named.
  assert pack.main(['--input', str(tmp_path), '--output', str(tmp_path / 'x'), '--images-per-shard', '3']) == 2
  assert 'unknown option --images-per-shard (did you mean --images_per_shard?)' in capsys.readouterr().err
  assert not list(tmp_path.iterdir())
