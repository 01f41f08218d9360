"""Training on several worker processes of this machine, as a cluster would run them.

On a cluster (Vertex AI worker pools, a Kubeflow TFJob) every worker is a process
of its own, started with TF_CONFIG naming the whole cluster and its own place in
it; `run_fn` then trains under MultiWorkerMirroredStrategy (distribution.py). With
`training.workers=N` and no cluster given, `run_fn` calls `train_on_local_cluster`,
which does the same on this machine: N fresh Python processes on loopback, each
with its own TF_CONFIG, each running `run_fn` on the same Transform output. Worker
0 is the chief: it writes the history and exports the model into the Trainer's
output; the others train with it and write nothing there.

The workers are fresh processes, not this one: MultiWorkerMirroredStrategy must
configure TensorFlow's collective ops before TensorFlow's runtime starts, and in
the TFX Trainer it has long started (the local runner runs every component in one
process).
"""

import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Sequence

from absl import logging
import portpicker

# The FnArgs fields run_fn reads, passed to each worker as JSON.
FN_ARGS_FIELDS = ('train_files', 'eval_files', 'transform_output',
                  'serving_model_dir', 'model_run_dir', 'custom_config')


class WorkerFailedError(RuntimeError):
  """A worker process of the local cluster failed; the message names it."""


def tf_configs(ports: Sequence[int]) -> List[Dict]:
  """TF_CONFIG of each worker of a loopback cluster on `ports` (worker 0 chief)."""
  cluster = {'worker': [f'127.0.0.1:{port}' for port in ports]}
  return [{'cluster': cluster, 'task': {'type': 'worker', 'index': index}}
          for index in range(len(ports))]


def train_on_local_cluster(fn_args, workers: int,
                           timeout_seconds: float = 3600) -> None:
  """Runs run_fn in `workers` processes on loopback; returns when all are done.

  Raises WorkerFailedError naming the first worker that failed (the others are
  stopped: collective training cannot go on without it), with the end of its log.
  """
  arguments = json.dumps({name: getattr(fn_args, name)
                          for name in FN_ARGS_FIELDS})
  log_dir = os.path.join(fn_args.model_run_dir, 'workers')
  os.makedirs(log_dir, exist_ok=True)
  # The workers import this package from where this process found it.
  package_root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  python_path = os.pathsep.join(
      p for p in (package_root, os.environ.get('PYTHONPATH')) if p)
  processes = []
  for index, tf_config in enumerate(tf_configs(
      [portpicker.pick_unused_port() for _ in range(workers)])):
    log_path = os.path.join(log_dir, f'worker-{index}.log')
    with open(log_path, 'wb') as log:
      processes.append((index, log_path, subprocess.Popen(
          [sys.executable, '-m', 'models.trainer.multi_worker', arguments],
          env=dict(os.environ, TF_CONFIG=json.dumps(tf_config),
                   PYTHONPATH=python_path),
          stdout=log, stderr=subprocess.STDOUT)))
  logging.info('Training on %d worker processes on loopback (logs in %s)',
               workers, log_dir)
  deadline = time.monotonic() + timeout_seconds
  try:
    while any(p.poll() is None for _, _, p in processes):
      failed = [(i, path, p) for i, path, p in processes
                if p.poll() not in (None, 0)]
      if failed:
        raise _failure(*failed[0])
      if time.monotonic() > deadline:
        raise WorkerFailedError(
            f'the {workers} training workers did not finish in '
            f'{timeout_seconds:.0f} s (logs in {log_dir})')
      time.sleep(0.5)
    for index, path, process in processes:
      if process.returncode:
        raise _failure(index, path, process)
  finally:
    for _, _, process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()


def _failure(index: int, log_path: str, process) -> WorkerFailedError:
  with open(log_path, 'rb') as f:
    tail = f.read()[-2000:].decode('utf-8', 'replace')
  return WorkerFailedError(
      f'training worker {index} exited with status {process.returncode} '
      f'({log_path}):\n{tail}')


def _main(argv: Sequence[str]) -> None:
  """One worker: run_fn on the FnArgs fields in argv[1], under this TF_CONFIG."""
  # pylint: disable=g-import-not-at-top
  from tfx.components.trainer import fn_args_utils
  from models.trainer import mnist_trainer
  logging.set_verbosity(logging.INFO)  # the epochs, into the worker's log
  mnist_trainer.run_fn(fn_args_utils.FnArgs(**json.loads(argv[1])))


if __name__ == '__main__':
  _main(sys.argv)
