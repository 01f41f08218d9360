"""The model server started in the test process, and what it did.

`start_server` starts the same ModelServer `python -m serving` runs, on 127.0.0.1
and free ports; tests that need the real command line start it as a process
with serving/model_servers/process.py instead.
"""

import collections
import contextlib
import threading
from typing import Dict, Iterator

from serving.model_servers import process as process_lib


def start_server(*models, **options):
  """A started ModelServer on 127.0.0.1, free ports, for (name, base_path) pairs
  or ModelConfigs; `options` override ServerOptions fields (TF Serving's flag
  names; file_system_poll_wait_seconds defaults to 0.1 here)."""
  from serving.core import model_registry  # pylint: disable=g-import-not-at-top
  from serving.model_servers import server as server_lib  # pylint: disable=g-import-not-at-top
  configs = [m if isinstance(m, model_registry.ModelConfig)
             else model_registry.ModelConfig(*m) for m in models]
  settings = dict(host='127.0.0.1', port=process_lib.free_port(),
                  rest_api_port=process_lib.free_port(),
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
