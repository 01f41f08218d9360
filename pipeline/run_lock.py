"""One `mnist-tfx run` per output directory at a time.

Two runs on one output directory would share its ML Metadata database and its
serving directory: both could compute the same next version and race to push it.
The second run is refused at once, before it writes anything, with a line naming
the run that holds the directory. The lock is an flock on a file in the output
directory, so it is released when the holder exits, however it exits.
"""

import contextlib
import fcntl
import os
from typing import Iterator

from pipeline.errors import UserError

LOCK_FILE = '.mnist-tfx-run.lock'


class OutputDirBusy(UserError):
  """Another run holds the output directory."""


@contextlib.contextmanager
def hold(output_dir: str) -> Iterator[None]:
  """Holds `output_dir` for this process; raises OutputDirBusy if another does."""
  os.makedirs(output_dir, exist_ok=True)
  fd = os.open(os.path.join(output_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 32, 0).decode(errors='replace').strip() or '?'
      raise OutputDirBusy(
          f'another `mnist-tfx run` (pid {holder}) is using {output_dir}: wait '
          'for it to finish, or give another --output-dir') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)
  finally:
    os.close(fd)
