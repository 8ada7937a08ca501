"""Keeps TensorFlow's and LiteRT's native start-up notices out of the user's terminal, in every process.

TensorFlow's C++ code logs to file descriptor 2 directly, some of it before its
log level is read (absl's "All log messages before absl::InitializeLog()", the
CUDA stub's "Could not find cuda drivers" on machines without a GPU), and
TF_CPP_MIN_LOG_LEVEL cannot silence those. So while a model backend is imported
and loaded, descriptor 2 goes to a temporary file, and afterwards every line
but the known notices is written back: a real error still shows.
"""
import contextlib
import os
import re
import sys
import tempfile

# What TF_CPP_MIN_LOG_LEVEL does silence (INFO and WARNING of TF's C++ logs), for this process and the
# processes it starts; set before TensorFlow is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

NOISE = re.compile(r'absl::InitializeLog\(\)|cudart_stub\.cc|cuInit|cuda_(?:platform|driver|executor)\.cc|'
                   r'oneDNN custom operations|TensorFlow binary is optimized|Created TensorFlow Lite XNNPACK delegate|'
                   r'cuda_(?:dnn|blas|fft)\.cc.*Unable to register')


@contextlib.contextmanager
def quiet():
  """Native start-up notices written inside the block are dropped; everything else is kept, in order."""
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (OSError, ValueError):  # no descriptor 2 to redirect (embedded interpreters): change nothing
    yield
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().decode('utf-8', 'replace').splitlines(keepends=True)
              if not NOISE.search(line)]
      if kept:
        sys.stderr.write(''.join(kept))
        sys.stderr.flush()
