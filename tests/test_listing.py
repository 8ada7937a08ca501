"""The streamed listing cut into key ranges (transforms/read/listing.py), and lists read in byte ranges: every
file once, in path order, however the input is cut."""
import random

import pytest
from apache_beam.io.filesystems import FileSystems

from transforms.read import list_inputs, listing, match


@pytest.fixture(scope='module', name='tree')
def tree_fixture(tmp_path_factory):
  """Folders of uneven sizes, names that sort around '/' ('sub-x', 'sub.jpg', 'sub/', 'sub0'), a symlink."""
  root = tmp_path_factory.mktemp('tree')
  rng = random.Random(3)
  names = ['a.jpg', 'b.png', 'ab.jpg', 'sub/c.jpg', 'sub/deep/d.jpg', 'sub/deep/e.txt', 'x[1].jpg', 'sub-x/f.jpg',
           'sub.jpg', 'sub0/g.jpg'] + [f'{i:03d}/{j:04d}.jpg' for i in range(30) for j in range(rng.randint(0, 40))]
  for name in names:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b'x' * len(name))
  (root / 'linked').symlink_to(root / 'sub', target_is_directory=True)  # not walked, as os.walk and Beam
  return root


@pytest.mark.parametrize('glob', ['**', '*', '*.jpg', 'sub/**', '**/*.jpg', 'a.jpg', 'sub/', 'su*'])
def test_the_listing_is_beams_match_in_path_order(tree, glob):
  pattern = f'{tree}/{glob}'
  streamed = [(f.path, f.size_in_bytes) for f in listing.files(pattern)]
  assert streamed == sorted(streamed)
  assert streamed == sorted((m.path, m.size_in_bytes) for m in FileSystems.match([pattern])[0].metadata_list)


@pytest.mark.parametrize('shards, every', [(1, 1), (2, 1), (7, 1), (64, 1), (64, 5), (64, 30), (4, 1000)])
def test_every_cut_gives_every_file_once_in_order(tree, shards, every):
  pattern = f'{tree}/**'
  whole = [f.path for f in listing.files(pattern)]
  ranges = listing.split(pattern, shards, every)
  parts = [[f.path for f in listing.files(pattern, lo=lo, hi=hi)] for lo, hi in ranges]
  assert [path for part in parts for path in part] == whole
  if len(whole) > shards * every:  # found from the names near the top of the tree
    assert len(ranges) == shards
    assert shards <= 2 or max(len(part) for part in parts) < len(whole) / 2
  else:  # a small input, listed once: cut where the paths say, so about `every` files a range
    assert len(ranges) == 1 + sum(listing.cut_point(path, every) for path in whole[:-1])


def test_a_few_new_files_move_no_cut_of_a_small_input(tree, tmp_path):
  before = listing.split(f'{tree}/**', 64, 30)
  (tree / 'sub' / 'new.jpg').write_bytes(b'x')
  try:
    after = listing.split(f'{tree}/**', 64, 30)
  finally:
    (tree / 'sub' / 'new.jpg').unlink()
  moved = set(before) ^ set(after)
  assert len(moved) <= 3  # the range it falls in (split in two, if it is a cut point itself)


def test_a_list_read_in_byte_ranges_gives_each_line_once(tmp_path):
  lines = [f'img/{i:05d}.jpg' for i in range(3000)] + ['# a comment', '', 'last.jpg']
  listed = tmp_path / 'list.txt'
  listed.write_text('\n'.join(lines))  # no newline at the end
  size = listed.stat().st_size
  whole = [ref.path for ref in match.list_file_refs(str(listed))]
  assert len(whole) == 3001
  for step in (1, 7, 100, 4096, size):
    edges = list(range(0, size, step)) + [None]
    parts = [ref.path for lo, hi in zip(edges, edges[1:]) for ref in match.list_file_refs(str(listed), lo, hi)]
    assert parts == whole, step


def test_a_file_an_earlier_input_names_is_left_to_it(tmp_path):
  for name in ('a.jpg', 'b.jpg', 'sub/c.jpg'):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(b'x')
  listed = tmp_path / 'list.txt'
  listed.write_text('a.jpg\nsub/c.jpg\nother/elsewhere.jpg\n')
  patterns = [f'{tmp_path}/*.jpg', str(tmp_path / 'sub'), str(listed)]
  refs = [[ref.path for shard in list_inputs.shards(patterns, i, 'images', False, 64) for ref in list_inputs.shard_refs(shard)]
          for i in range(len(patterns))]
  assert refs == [[str(tmp_path / 'a.jpg'), str(tmp_path / 'b.jpg')], [str(tmp_path / 'sub' / 'c.jpg')],
                  [str(tmp_path / 'other' / 'elsewhere.jpg')]]
