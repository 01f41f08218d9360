"""The model server as a child process, started and waited for until it answers.

Whatever needs a real server process (the InfraValidator, the benchmarks, the
tests) starts `python -m serving` with TF Serving's flags through
`ServerProcess`, and picks its ports with `free_port`. The process counts as
started once it has printed its start-up report (main.py: the models, the
request logs, the front ends, then `batching: ...`) and its gRPC endpoint takes
connections. The server loads the models found on disk before it opens its
front ends, as TF Serving does, so by then every version is either AVAILABLE or
failed.

What the process prints (stdout and stderr together) is read by a thread, so a
full pipe never blocks it, and kept: the last lines in `output`, everything in
`log_path` when one is given.
"""

import collections
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Deque, Dict, List, Optional

import portpicker

from serving.model_servers import main

# The folder that holds the serving package: the child must import it.
_CODE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_KEPT_LINES = 1000
_POLL_SECONDS = 0.1


def free_port() -> int:
  """A TCP port no process uses now (portpicker also avoids the ports it handed
  out before, in this process and to its siblings)."""
  return portpicker.pick_unused_port()


class ServerExited(Exception):
  """The server process exited before it answered; the message ends with what
  it printed last."""


class ServerNotReady(Exception):
  """The server process did not answer within the time given."""


def _parent_death_signal() -> Optional[Callable[[], None]]:
  """A preexec function giving the child SIGTERM when this process dies, so a
  killed caller leaves no server behind; None where prctl is missing. libc's
  prctl is looked up here, before the fork: the child only calls it."""
  try:
    prctl = ctypes.CDLL(None, use_errno=True).prctl
  except (OSError, AttributeError):
    return None
  pr_set_pdeathsig = 1
  return lambda: prctl(pr_set_pdeathsig, int(signal.SIGTERM))


class ServerProcess:
  """`python -m serving --host=HOST --port=PORT [--rest_api_port=PORT] FLAGS`.

  port: None picks a free port; 0 is TF Serving's "no TCP port", then give
  `grpc_socket_path`, where the server is waited for instead. rest_api_port:
  None leaves REST off (TF Serving's default); give `free_port()` for one.
  """

  def __init__(self, *flags: str, host: str = '127.0.0.1',
               port: Optional[int] = None,
               rest_api_port: Optional[int] = None,
               grpc_socket_path: str = '',
               log_path: str = '', cwd: Optional[str] = None,
               env: Optional[Dict[str, str]] = None,
               die_with_parent: bool = False):
    self.host = host
    self.grpc_port = free_port() if port is None else port
    self.rest_port = rest_api_port
    self.grpc_socket_path = grpc_socket_path
    self.command: List[str] = [
        sys.executable, '-m', 'serving', f'--host={host}',
        f'--port={self.grpc_port}',
        *([f'--rest_api_port={rest_api_port}'] if rest_api_port is not None
          else []),
        *([f'--grpc_socket_path={grpc_socket_path}'] if grpc_socket_path
          else []),
        *flags]
    self.log_path = log_path
    self._cwd = cwd
    self._env = dict(os.environ, **(env or {}))
    self._env['PYTHONPATH'] = os.pathsep.join(
        p for p in (_CODE_ROOT, self._env.get('PYTHONPATH')) if p)
    self._die_with_parent = die_with_parent
    self.output: Deque[str] = collections.deque(maxlen=_KEPT_LINES)
    self._report_done = threading.Event()
    self.process: Optional[subprocess.Popen] = None
    self._reader: Optional[threading.Thread] = None

  @property
  def pid(self) -> int:
    return self.process.pid

  @property
  def grpc_target(self) -> str:
    if self.grpc_port:
      return f'{self.host}:{self.grpc_port}'
    return f'unix:{self.grpc_socket_path}'

  def start(self, timeout: float = 120) -> 'ServerProcess':
    """Starts the process and returns once it answers; ServerExited if it
    exits first, ServerNotReady (the process stopped) after `timeout` s."""
    self.launch()
    self.wait(timeout)
    return self

  def launch(self) -> 'ServerProcess':
    """Starts the process without waiting (then `wait`), for callers with
    work of their own to do while the server loads its models."""
    self.process = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
        self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=self._cwd, env=self._env,
        preexec_fn=_parent_death_signal() if self._die_with_parent else None)
    self._reader = threading.Thread(target=self._read, daemon=True,
                                    name=f'model-server-{self.process.pid}')
    self._reader.start()
    return self

  def wait(self, timeout: float = 120) -> None:
    """Returns once the launched server answers (see start)."""
    try:
      self._wait_until_answering(time.monotonic() + timeout, timeout)
    except ServerNotReady:
      self.stop()
      raise

  def _read(self) -> None:
    log = open(self.log_path, 'a', encoding='utf-8') if self.log_path else None
    try:
      for line in iter(self.process.stdout.readline, b''):
        text = line.decode('utf-8', 'replace')
        self.output.append(text)
        if log:
          log.write(text)
          log.flush()
        if text.startswith(main.READY_LINE):
          self._report_done.set()
    finally:
      if log:
        log.close()
      self._report_done.set()  # the process is gone: nobody waits for it

  def _wait_until_answering(self, deadline: float, timeout: float) -> None:
    """Until the start-up report is out and the gRPC endpoint takes
    connections (a plain connect: the server may speak TLS)."""
    while True:
      code = self.exit_code()
      if code is not None:
        self._reader.join(timeout=5)  # what it printed last, in the message
        raise ServerExited(f'the model server exited (status {code}) before '
                           f'it answered: {self.log_tail()}')
      if time.monotonic() > deadline:
        raise ServerNotReady(f'the model server did not answer within '
                             f'{timeout:g} s: {self.log_tail()}')
      if self._report_done.wait(_POLL_SECONDS) and self._accepts_connections():
        return

  def _accepts_connections(self) -> bool:
    try:
      if self.grpc_port:
        connection = socket.create_connection((self.host, self.grpc_port),
                                              timeout=_POLL_SECONDS)
      else:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(_POLL_SECONDS)
        connection.connect(self.grpc_socket_path)
    except OSError:
      return False
    connection.close()
    return True

  def exit_code(self) -> Optional[int]:
    return self.process.poll() if self.process else None

  def alive(self) -> bool:
    return self.process is not None and self.process.poll() is None

  def text(self) -> str:
    """The lines it printed (the last ones, for a long-running server)."""
    return ''.join(self.output)

  def log_tail(self, lines: int = 5) -> str:
    kept = [line.rstrip() for line in self.output if line.strip()]
    return ' | '.join(kept[-lines:])

  def stop(self, grace_seconds: float = 30) -> Optional[int]:
    """SIGTERM, as an operator stops it (it stops cleanly), SIGKILL if it has
    not exited after `grace_seconds`. Returns its exit status."""
    process = self.process
    if process is None:
      return None
    if process.poll() is None:
      process.send_signal(signal.SIGTERM)
      try:
        process.wait(grace_seconds)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if self._reader:
      self._reader.join(timeout=10)
    return process.returncode

  def __enter__(self) -> 'ServerProcess':
    return self.start() if self.process is None else self

  def __exit__(self, *exc) -> None:
    self.stop()
