"""Starting TensorFlow without the C++ lines it prints as it starts.

TensorFlow 2.21 prints them (oneDNN, CUDA probing, "All log messages before
absl::InitializeLog() ...") through absl's C++ logging while it loads, which
TF_CPP_MIN_LOG_LEVEL does not silence, and says "failed call to cuInit" when its
runtime starts on a machine without CUDA. They say nothing to whoever runs the
server (or any other command: pipeline/cli/output_capture.py uses these too), so
they go to /dev/null unless asked for with -v.
"""

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stderr_discarded() -> Iterator[None]:
  """Sends fd 2 to /dev/null while active (Python exceptions still propagate)."""
  sys.stderr.flush()
  saved = os.dup(2)
  null = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(null, 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(null)


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow without its start-up lines; an import that fails still
  raises, with its message."""
  if 'tensorflow' in sys.modules:
    return
  with stderr_discarded():
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,import-outside-toplevel


def start_tensorflow_quietly() -> None:
  """Starts TensorFlow's runtime (which looks for GPUs when it starts, at the
  first device listing or model load, not at import) without its lines. Thread
  settings must come before this: the runtime takes them when it starts."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  with stderr_discarded():
    tf.config.list_logical_devices()
