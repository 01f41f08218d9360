"""The model server started in the test process, and what it did.

`start_server` starts the same ModelServer `mnist-tfx serve` runs, on 127.0.0.1 and
free ports; tests that need the real command line start `python -m pipeline.cli
serve` as a process instead.
"""

import collections
import contextlib
import socket
import threading
from typing import Dict, Iterator


def start_server(*models, **options):
  """A started ModelServer on 127.0.0.1, free ports, for (name, base_path) pairs
  or ModelConfigs; `options` override ServerOptions fields (TF Serving's flag
  names; file_system_poll_wait_seconds defaults to 0.1 here)."""
  from serving import model_registry  # pylint: disable=g-import-not-at-top
  from serving import server as server_lib  # pylint: disable=g-import-not-at-top
  configs = [m if isinstance(m, model_registry.ModelConfig)
             else model_registry.ModelConfig(*m) for m in models]
  settings = dict(host='127.0.0.1', port=free_port(), rest_api_port=free_port(),
                  file_system_poll_wait_seconds=0.1)
  settings.update(options)
  return server_lib.ModelServer(
      configs, server_lib.ServerOptions(**settings)).start()


@contextlib.contextmanager
def model_calls(server, model_name: str
                ) -> Iterator[Dict[str, collections.Counter]]:
  """{signature: Counter(rows per model call)} of the calls the loaded versions
  of `model_name` make inside the block: how the server batched its requests.

  Every model call of a version runs its graph through the version's
  GraphRunner, so wrapping that runner observes the calls; a call is put under
  the signature whose input tensors it feeds.
  """
  calls: Dict[str, collections.Counter] = collections.defaultdict(
      collections.Counter)
  lock = threading.Lock()
  runners = []
  for servable in server.registry.servables(model_name).values():
    by_inputs = {frozenset(signature.input_names.values()): name
                 for name, signature in servable.signatures.items()}

    def counting(feeds, fetches, timeout_in_ms=0, run=servable.runner.run,
                 by_inputs=by_inputs):
      rows = len(next(iter(feeds.values())))
      with lock:
        calls[by_inputs.get(frozenset(feeds))][rows] += 1
      return run(feeds, fetches, timeout_in_ms)
    servable.runner.run = counting
    runners.append(servable.runner)
  try:
    yield calls
  finally:
    for runner in runners:
      del runner.run  # The class's own method again.


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago (for subprocess servers)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class ServerProcess:
  """`mnist-tfx serve FLAGS` as a real process on 127.0.0.1 and free ports (gRPC
  and REST), started and waited for until it reports it is serving."""

  def __init__(self, *flags: str, timeout: float = 90):
    # pylint: disable=g-import-not-at-top
    import subprocess
    import sys
    import time
    from pipeline import config as config_lib
    self.grpc_port, self.rest_port = free_port(), free_port()
    self.process = subprocess.Popen(
        [sys.executable, '-m', 'pipeline.cli', 'serve', '--host=127.0.0.1',
         f'--port={self.grpc_port}', f'--rest_api_port={self.rest_port}',
         *flags],
        cwd=config_lib.REPO_ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline, lines = time.monotonic() + timeout, []
    while not any(line.startswith('batching: ') for line in lines):
      line = self.process.stdout.readline()
      if not line and self.process.poll() is not None:
        raise RuntimeError('the server exited: ' + ''.join(lines))
      if time.monotonic() > deadline:
        self.stop()
        raise RuntimeError(f'no server within {timeout} s: ' + ''.join(lines))
      lines.append(line)
    # Keep reading what it prints, so that a full pipe never blocks it.
    self.output = collections.deque(lines, maxlen=200)
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self) -> None:
    for line in self.process.stdout:
      self.output.append(line)

  def alive(self) -> bool:
    return self.process.poll() is None

  def stop(self) -> None:
    stop_process(self.process)
    self._reader.join(timeout=5)


def stop_process(process) -> None:
  """Stops a server process as an operator would (SIGTERM), killing it if it
  has not exited within 30 s."""
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  if process.poll() is None:
    process.send_signal(signal.SIGTERM)
    try:
      process.wait(timeout=30)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()
