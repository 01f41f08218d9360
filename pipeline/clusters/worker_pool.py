"""A Beam worker pool on one address: the Python SDK workers of one task manager.

Beam's EXTERNAL environment asks a worker pool to start an SDK worker for each
task manager (Flink) or executor (Spark) that runs Python code. On Kubernetes the
pool is a sidecar of its task manager, reached at localhost:50000. On one machine
several task managers share one loopback, and each JVM numbers its workers from
1, so two task managers sharing a pool would stop each other's workers. Each one
here gets its own pool on its own loopback address (127.0.0.2, 127.0.0.3, ...),
and its own hosts file that names that address `beam-worker-pool` (flink.py,
spark.py). Beam's `worker_pool_main` always binds every address, hence this
module: the same servicer, bound to one address.

    python -m pipeline.clusters.worker_pool 127.0.0.2:50000
"""

import logging
import signal
import sys
import threading

import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.worker import worker_pool_main
from apache_beam.utils import thread_pool_executor


_LOG = logging.getLogger(__name__)


class _LoggingPool(worker_pool_main.BeamFnExternalWorkerPoolServicer):
  """Beam's servicer, logging each worker it starts: which engine process asked
  (its control endpoint) shows in this pool's log."""

  def StartWorker(self, request, context):  # pylint: disable=invalid-name
    _LOG.info('starting SDK worker %s for %s', request.worker_id,
                 request.control_endpoint.url)
    return super().StartWorker(request, context)


def serve(address: str, use_process: bool = False) -> None:
  """Runs a pool at host:port until SIGTERM.

  Its SDK workers are threads of this process by default, as Beam's LOOPBACK
  workers are threads of the submitting process: the pool imports TensorFlow and
  the TFX libraries once, when it starts, instead of in a new process for every
  Beam job (a Beam step on the cluster took 30 s instead of 50-60 s here).
  `use_process` gives each worker a process of its own, as Beam's pool does.
  """
  if not use_process:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_data_validation  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_model_analysis  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_transform.beam  # pylint: disable=g-import-not-at-top,unused-import
  pool = _LoggingPool(use_process=use_process)
  server = grpc.server(thread_pool_executor.shared_unbounded_instance())
  beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(
      pool, server)
  if not server.add_insecure_port(address):
    raise SystemExit(f'worker pool: cannot listen on {address}')
  server.start()
  _LOG.info('Beam worker pool listening on %s', address)
  stopped = threading.Event()
  signal.signal(signal.SIGTERM, lambda *_: stopped.set())
  stopped.wait()
  for process in list(pool._worker_processes.values()):  # pylint: disable=protected-access
    worker_pool_main.kill_process_gracefully(process)
  server.stop(grace=1)


if __name__ == '__main__':
  # A handler of its own: TensorFlow's and absl's imports reset the root logger.
  handler = logging.StreamHandler(sys.stdout)
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
  _LOG.addHandler(handler)
  _LOG.setLevel(logging.INFO)
  _LOG.propagate = False
  serve(sys.argv[1])
