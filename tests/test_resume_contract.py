"""The resume contract covers the labels file's content: job.json records its SHA-256 beside the model's, and a
--resume with a relabelled file is refused (exit 2) rather than mixing labels in one output."""
import hashlib
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from pipeline import run
from tests import datagen
from transforms.output import claim


def test_labels_fingerprint_is_the_files_sha256(tmp_path):
  labels = tmp_path / 'labels.txt'
  labels.write_bytes(b'cat\ndog\n')
  assert run.labels_fingerprint(str(labels)) == hashlib.sha256(b'cat\ndog\n').hexdigest()
  assert run.labels_fingerprint(None) is None


def _record(labels, digest):
  return {'labels_file': labels, run.LABELS_DIGEST: digest}


@pytest.mark.parametrize('before, refused', [
    (_record('l.txt', 'a'), False),  # same file, same content
    (_record('l.txt', 'b'), True),  # same file, other content
    ({'labels_file': 'l.txt'}, True),  # written before job.json recorded the content: cannot tell
    (_record('other.txt', 'b'), False),  # another path: the claim's comparison of the options refuses it
])
def test_check_labels_unchanged(tmp_path, before, refused):
  (tmp_path / 'job.json').write_text(json.dumps(before))
  if refused:
    with pytest.raises(claim.OutputError, match='the labels changed'):
      run.check_labels_unchanged(str(tmp_path), _record('l.txt', 'a'))
  else:
    run.check_labels_unchanged(str(tmp_path), _record('l.txt', 'a'))
  run.check_labels_unchanged(str(tmp_path / 'new'), _record('l.txt', 'a'))  # nothing written there yet


def _job(out, labels, *extra):
  args = [sys.executable, '-m', 'pipeline', '--input', f'{datagen.PHOTOS}/*', '--output', str(out), '--model',
          str(datagen.TFLITE_QUANT), '--task', 'classify', '--labels_file', str(labels)]
  return subprocess.run(args + list(extra), capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.full
def test_resume_with_relabelled_file_is_refused(tmp_path):
  labels, out = tmp_path / 'labels.txt', tmp_path / 'out'
  names = datagen.LABELS.read_text().splitlines()
  labels.write_text('\n'.join(names) + '\n')
  first = _job(out, labels)
  assert first.returncode == 0, first.stderr[-2000:]
  record = json.loads((out / 'job.json').read_text())
  assert record[run.LABELS_DIGEST] == hashlib.sha256(labels.read_bytes()).hexdigest()
  assert record[claim.MODEL_DIGEST]  # beside the model's
  rows = pq.read_table(out / 'predictions').sort_by('id').to_pylist()

  labels.write_text('\n'.join(name.upper() for name in names) + '\n')  # same path, same count, other names
  proc = _job(out, labels, '--resume')
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'the labels changed' in proc.stderr and '--overwrite' in proc.stderr
  assert pq.read_table(out / 'predictions').sort_by('id').to_pylist() == rows  # untouched
  assert (out / 'summary.json').exists()
