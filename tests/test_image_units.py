"""Image units cut from the listing stream (transforms/read/image_units.py): sized by --files_per_unit whatever
the input's size, each file once, and stable: a file added changes its own unit, not the others."""
from transforms.read import image_units, match


def _refs(names):
  return [match.FileRef(f'/data/{name}', name[:-4], 10) for name in names]


def test_units_hold_about_files_per_unit_files_each_once():
  names = [f'{i:06d}.jpg' for i in range(20_000)]
  units = list(image_units.cut(_refs(names), 100))
  assert [ref.path for unit in units for ref in unit.items] == [f'/data/{n}' for n in names]
  sizes = [len(unit.items) for unit in units]
  assert all(25 <= size <= 400 for size in sizes[:-1]) and sizes[-1] <= 400
  assert 60 <= sum(sizes) / len(sizes) <= 140  # about 100: a quarter at least, then one file in 100 ends a unit
  assert len({unit.name for unit in units}) == len(units) and units[0].name == 'images@/data/000000.jpg'


def test_a_file_added_or_removed_changes_only_the_units_around_it():
  names = [f'{i:06d}.jpg' for i in range(5_000)]
  before = {(u.name, u.fingerprint) for u in image_units.cut(_refs(names), 50)}
  for changed in (sorted(names + ['002500x.jpg']), names[:2500] + names[2501:]):
    after = {(u.name, u.fingerprint) for u in image_units.cut(_refs(changed), 50)}
    assert len(before - after) <= 2 and len(after - before) <= 2  # its unit, and rarely the next one


def test_one_file_per_unit_and_names_that_are_not_utf8():
  refs = [match.FileRef('/data/caf\udce9.jpg', 'caf\udce9', 3), match.FileRef('/data/d.jpg', 'd', 3)]
  units = list(image_units.cut(refs, 1))
  assert [len(u.items) for u in units] == [1, 1]
  assert units[0].name == 'images@/data/caf\\xe9.jpg'  # a marker's name must be UTF-8
  units[0].name.encode('utf-8')
