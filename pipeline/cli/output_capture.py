"""Keeps a run's terminal to what a user reads: progress, epochs, the summary.

TensorFlow's C++ logging (oneDNN, CUDA probing), Python warnings, TFX's and Beam's
INFO logs and the setuptools output of TFX's user-code wheel build (a subprocess)
all write to file descriptors 1 and 2 of the process. Redirecting those two
descriptors into a log file is the only way to catch every one of them; the lines
meant for the user go to a duplicate of the original stdout instead. Commands
that only load TensorFlow load it with its start-up lines discarded (as the model
server does: serving/model_servers/tensorflow_startup.py).
"""

import contextlib
import functools
import os
import sys
from typing import Any, Callable, Iterator, TextIO

from serving.model_servers import tensorflow_startup


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


def quiet_tensorflow(command: Callable[..., Any]) -> Callable[..., Any]:
  """Decorates a CLI command that loads TensorFlow: it is loaded quietly first."""

  @functools.wraps(command)
  def wrapper(*args, **kwargs):
    tensorflow_startup.import_tensorflow_quietly()
    return command(*args, **kwargs)

  return wrapper
