"""Keeps a run's terminal to what a user reads: progress, epochs, the summary.

TensorFlow's C++ logging (oneDNN, CUDA probing), Python warnings, TFX's and Beam's
INFO logs and the setuptools output of TFX's user-code wheel build (a subprocess)
all write to file descriptors 1 and 2 of the process. Redirecting those two
descriptors into a log file is the only way to catch every one of them; the lines
meant for the user go to a duplicate of the original stdout instead. Commands
that only load TensorFlow load it with its start-up lines discarded.
"""

import contextlib
import functools
import os
import sys
from typing import Any, Callable, Iterator, TextIO


@contextlib.contextmanager
def to_log_file(path: str) -> Iterator[TextIO]:
  """Sends fd 1 and 2 to `path` (appended) while active; yields the real stdout."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  sys.stdout.flush()
  sys.stderr.flush()
  saved = os.dup(1), os.dup(2)
  terminal = os.fdopen(os.dup(1), 'w', buffering=1)
  log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  try:
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    yield terminal
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
    for fd in (*saved, log_fd):
      os.close(fd)
    terminal.close()


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
  """Imports TensorFlow without its C++ start-up lines.

  TensorFlow 2.21 prints them (oneDNN, CUDA probing, "All log messages before
  absl::InitializeLog() ...") through absl's C++ logging while it loads, which
  TF_CPP_MIN_LOG_LEVEL does not silence; they say nothing to a user. An import that
  fails still raises, with its message.
  """
  if 'tensorflow' in sys.modules:
    return
  with stderr_discarded():
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import,import-outside-toplevel


def start_tensorflow_quietly() -> None:
  """Starts TensorFlow's runtime without the lines it prints as it does.

  TensorFlow looks for GPUs when its runtime starts (the first device listing or
  model load), not when it is imported, and on a machine without CUDA it says
  "failed call to cuInit" through the same C++ logging. Thread settings must come
  before this: the runtime takes them when it starts.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top,import-outside-toplevel
  with stderr_discarded():
    tf.config.list_logical_devices()


def quiet_tensorflow(command: Callable[..., Any]) -> Callable[..., Any]:
  """Decorates a CLI command that loads TensorFlow: it is loaded quietly first."""

  @functools.wraps(command)
  def wrapper(*args, **kwargs):
    import_tensorflow_quietly()
    return command(*args, **kwargs)

  return wrapper
