"""WebDataset grouping as the webdataset library does it, on shards laid out as img2dataset writes them."""
import io
import json
import tarfile

import pytest

from transforms.read.formats import webdataset


def _tar(members, mode='w'):
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode=mode) as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def test_split_name_like_webdataset():
  assert webdataset.split_name('000001.jpg') == ('000001', 'jpg')
  assert webdataset.split_name('a/b.c/000001.seg.png') == ('a/b.c/000001', 'seg.png')
  assert webdataset.split_name('README') is None


@pytest.mark.parametrize('mode', ['w', 'w:gz'])
def test_groups_adjacent_members_by_key(mode):
  meta = json.dumps({'url': 'http://x/1.jpg', 'similarity': 0.31, 'key': '000001'}).encode()
  data = _tar([('000001.jpg', b'J1'), ('000001.json', meta), ('000001.txt', b'a cat'),
               ('000002.png', b'P2'), ('000002.txt', b'a dog'), ('000003.json', b'{}')], mode)
  samples = list(webdataset.samples(io.BytesIO(data)))
  assert [s.key for s in samples] == ['000001', '000002', '000003']
  first = samples[0]
  assert webdataset.image_extension(first) == 'jpg' and first.members['jpg'] == b'J1'
  found = webdataset.sample_values(first)
  assert found['txt'].values == [b'a cat'] and found['url'].values == ['http://x/1.jpg']
  assert found['similarity'].values == [0.31] and found['similarity'].kind == 'float64'
  assert webdataset.image_extension(samples[1]) == 'png'
  with pytest.raises(webdataset.SampleError, match="sample '000003' has no image member .*; it has: json"):
    webdataset.image_extension(samples[2])


def test_chosen_extension_and_repeated_member():
  data = _tar([('k.jpg', b'a'), ('k.seg.png', b'b'), ('k.jpg', b'c')])
  samples = list(webdataset.samples(io.BytesIO(data)))
  assert [(s.key, sorted(s.members)) for s in samples] == [('k', ['jpg', 'seg.png']), ('k', ['jpg'])]
  assert webdataset.image_extension(samples[0], 'seg.png') == 'seg.png'
  with pytest.raises(webdataset.SampleError, match='no .webp member'):
    webdataset.image_extension(samples[0], 'webp')


def test_writer_output_reads_back():
  buf = io.BytesIO()
  writer = webdataset.ShardWriter(buf, gzip=True)
  writer.add('sub/a', {'jpg': b'A', 'txt': b'caption'})
  writer.add('b', {'png': b'B'})
  writer.close()
  samples = list(webdataset.samples(io.BytesIO(buf.getvalue())))
  assert [(s.key, s.members) for s in samples] == [('sub/a', {'jpg': b'A', 'txt': b'caption'}),
                                                   ('b', {'png': b'B'})]


def test_bad_json_is_a_sample_error():
  sample = webdataset.Sample('k', {'jpg': b'', 'json': b'{nope'}, {'jpg': 'k.jpg', 'json': 'k.json'}, {})
  with pytest.raises(webdataset.SampleError, match='k.json is not valid JSON'):
    webdataset.sample_values(sample)
