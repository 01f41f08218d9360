"""Load test of the model server against calling the model in-process.

    ./mnist-tfx shell -c 'python bench/serving_benchmark.py'              # stand-in model
    ./mnist-tfx shell -c 'python bench/serving_benchmark.py --model_base_path outputs/serving/mnist'

Starts `python -m serving` as a separate process on loopback ports (as users run it),
then drives closed-loop load from this process: C clients each send a request,
wait for the answer and send the next. For concurrency 1, 8 and 32 it measures
single-image gRPC Predict and batched requests (--batch images per request), then
the same SavedModel signature called in-process from C threads, the ceiling a
server can approach. It prints throughput, p50/p99 latency and the ratio
server / in-process at equal concurrency. The server is started afresh for each of
--rounds rounds (gRPC runs, then in-process runs with the server gone), and the
rounds are pooled: on a shared machine the speed drifts from minute to minute, and
one round's ratio alone moved between 0.69x and 1.08x. Targets on a 2-core
machine: single-image gRPC at concurrency 32 at least as fast as single-image
in-process calls at the same concurrency (batching must pay for gRPC), p99 < 10 ms
at concurrency 8. In the last round, a longer single-image load at concurrency 32
(--memory_seconds) samples the server's resident memory, which must stay flat.

The client and the server share the machine's cores, so the server's figures
include the cost of generating the load; the last two columns say how many cores
the server ("cpu s") and this process ("cpu c": the gRPC client, or the in-process
calls) kept busy during each run.

The pooled figures are appended as one row to bench/results/serving_benchmark.csv
(bench/results.py; `recorded_figures` says which).

This is a script, not a test: it takes about a minute a round, plus the memory
load, and needs quiet cores.
"""

import argparse
import asyncio
import os
import shutil
import tempfile
import threading
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

# Before TensorFlow loads: its C++ start-up lines say nothing about the numbers.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import grpc  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top,wrong-import-position

from models import features  # pylint: disable=g-import-not-at-top,wrong-import-position
from models import serving_contract as contract  # pylint: disable=g-import-not-at-top,wrong-import-position
from models import serving_requests  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import client  # pylint: disable=g-import-not-at-top,wrong-import-position
from pipeline import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving.core import storage_path  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving.model_servers import process as process_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

# bench/results.py, beside this script.
import results as bench_results  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = config_lib.REPO_ROOT


class Result:
  """Latencies of one run."""

  def __init__(self, name: str, concurrency: int, images_per_request: int,
               latencies: List[float], seconds: float, errors: int,
               cpu: Tuple[float, float] = (float('nan'), float('nan'))):
    self.name = name
    self.concurrency = concurrency
    self.images_per_request = images_per_request
    self.latencies = np.asarray(latencies)
    self.seconds = seconds
    self.errors = errors
    self.cpu = cpu  # cores busy in the server and in this (client) process

  @classmethod
  def pooled(cls, rounds: Sequence['Result']) -> 'Result':
    """One run's worth of figures from the same run repeated: all latencies,
    all seconds (so throughput is the mean over the rounds), mean cores."""
    first = rounds[0]
    return cls(first.name, first.concurrency, first.images_per_request,
               np.concatenate([r.latencies for r in rounds]),
               sum(r.seconds for r in rounds), sum(r.errors for r in rounds),
               tuple(np.mean([r.cpu for r in rounds], axis=0)))

  @property
  def throughput(self) -> float:
    return len(self.latencies) / self.seconds

  def row(self, ceiling: 'Result' = None) -> str:
    p50, p99 = (np.percentile(self.latencies, [50, 99]) * 1000
                if len(self.latencies) else (float('nan'),) * 2)
    ratio = (f'{self.throughput / ceiling.throughput:6.0%}' if ceiling
             else '     -')
    return (f'{self.name:<28} {self.concurrency:>4} {self.throughput:>9.0f} '
            f'{self.throughput * self.images_per_request:>9.0f} {p50:>8.2f} '
            f'{p99:>8.2f} {ratio} {self.errors:>6} {self.cpu[0]:>5.2f} '
            f'{self.cpu[1]:>5.2f}')


HEADER = (f'{"mode":<28} {"conc":>4} {"req/s":>9} {"images/s":>9} '
          f'{"p50 ms":>8} {"p99 ms":>8} {"ratio":>6} {"errors":>6} '
          f'{"cpu s":>5} {"cpu c":>5}')


def cpu_seconds(pid) -> float:
  """User + system CPU time a process has used so far."""
  with open(f'/proc/{pid}/stat') as f:
    fields = f.read().rsplit(')', 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class CpuMeter:
  """Cores a server process and this process keep busy between start() and
  stop(): on a shared machine, what each side of the load costs."""

  def __init__(self, server_pid=None):
    self._pids = (server_pid, 'self')
    self._started = None

  def start(self):
    self._started = (time.perf_counter(),
                     [cpu_seconds(p) if p else 0.0 for p in self._pids])

  def stop(self) -> Tuple[float, float]:
    began, used = self._started
    elapsed = time.perf_counter() - began
    return tuple((cpu_seconds(p) - u) / elapsed if p else float('nan')
                 for p, u in zip(self._pids, used))


def images_request(images: np.ndarray, model_name: str) -> predict_pb2.PredictRequest:
  """The tutorial client's request: predict_images, float32 [N, 784]."""
  return client.predict_request(images, model_name, contract.IMAGES_SIGNATURE)


async def _grpc_load(target: str, requests: Sequence[predict_pb2.PredictRequest],
                     concurrency: int, seconds: float, warmup: float,
                     meter: CpuMeter):
  async with grpc.aio.insecure_channel(target) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    latencies: List[float] = []
    errors = [0]
    measuring = [False]
    stop_at = [float('inf')]

    async def worker(offset: int):
      i = offset
      while time.perf_counter() < stop_at[0]:
        request = requests[i % len(requests)]
        i += concurrency
        started = time.perf_counter()
        try:
          await stub.Predict(request, timeout=10)
        except grpc.aio.AioRpcError:
          errors[0] += 1
          continue
        if measuring[0]:
          latencies.append(time.perf_counter() - started)

    stop_at[0] = time.perf_counter() + warmup + seconds
    tasks = [asyncio.ensure_future(worker(k)) for k in range(concurrency)]
    await asyncio.sleep(warmup)
    measuring[0] = True
    meter.start()
    began = time.perf_counter()
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - began, errors[0], meter.stop()


def grpc_load(name, target, requests, concurrency, seconds, warmup,
              images_per_request, server_pid) -> Result:
  latencies, elapsed, errors, cpu = asyncio.run(
      _grpc_load(target, requests, concurrency, seconds, warmup,
                 CpuMeter(server_pid)))
  return Result(name, concurrency, images_per_request, latencies, elapsed, errors,
                cpu)


def in_process_load(name, function, inputs: Sequence[np.ndarray], concurrency,
                    seconds, warmup, images_per_request) -> Result:
  """C threads calling the signature function, each waiting for its answer."""
  latencies: List[float] = []
  lock = threading.Lock()
  measuring = threading.Event()
  stop_at = time.perf_counter() + warmup + seconds

  def worker(offset):
    i, mine = offset, []
    while time.perf_counter() < stop_at:
      x = inputs[i % len(inputs)]
      i += concurrency
      started = time.perf_counter()
      function(**{contract.IMAGES_INPUT: tf.constant(x)})[
          contract.SCORES_OUTPUT].numpy()
      if measuring.is_set():
        mine.append(time.perf_counter() - started)
    with lock:
      latencies.extend(mine)

  threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
  for t in threads:
    t.start()
  time.sleep(warmup)
  measuring.set()
  meter = CpuMeter()
  meter.start()
  began = time.perf_counter()
  for t in threads:
    t.join()
  return Result(name, concurrency, images_per_request, latencies,
                time.perf_counter() - began, 0, meter.stop())


def start_server(base_path: str, model_name: str, batching_file: str,
                 grpc_max_threads: int, extra_flags: Sequence[str] = (),
                 rest_api_port: Optional[int] = None
                 ) -> process_lib.ServerProcess:
  """`python -m serving` as a user would start it for this load, once it
  answers: each request in flight holds one of --grpc_max_threads request
  threads while it waits for its batch (as in TF Serving, whose Predict handler
  blocks too), so the pool must be larger than the concurrency, or it caps the
  batches (TF Serving's default, 4 per core, is 8 requests here)."""
  flags = [f'--model_name={model_name}', f'--model_base_path={base_path}',
           '--file_system_poll_wait_seconds=0',
           f'--grpc_max_threads={grpc_max_threads}', *extra_flags]
  if batching_file:
    flags += ['--enable_batching', f'--batching_parameters_file={batching_file}']
  return process_lib.ServerProcess(*flags, rest_api_port=rest_api_port,
                                   cwd=REPO).start(timeout=120)


def resident_mb(pid: int) -> float:
  with open(f'/proc/{pid}/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  raise RuntimeError(f'no VmRSS for pid {pid}')


def memory_under_load(pid: int, target: str, requests, seconds: float):
  """(MB after the first tenth, MB at the end, peak MB) of the server process
  while 32 clients send single images for `seconds`."""
  samples = []
  done = threading.Event()

  def sample():
    while not done.wait(seconds / 50):
      samples.append(resident_mb(pid))

  sampler = threading.Thread(target=sample)
  sampler.start()
  try:
    grpc_load('memory', target, requests, 32, seconds, 0.0, 1, pid)
  finally:
    done.set()
    sampler.join()
  return samples[len(samples) // 10], samples[-1], max(samples)


def write_stand_in(export_dir: str, architecture: str) -> None:
  """A SavedModel with the pushed model's `predict_images` signature, the one this
  benchmark calls, around fixed random weights.

  'cnn': a Keras-example-sized CNN (conv 32, conv 64, dense 128) that costs per
  call about what the trained model costs, so server overhead is measured against
  a realistic amount of model work; 'linear': one dense layer, almost free.
  """
  rng = np.random.default_rng(2001 if architecture == 'cnn' else 1001)

  def variable(*shape, scale=None):
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    value = rng.normal(0.0, scale or np.sqrt(2.0 / fan_in), size=shape)
    return tf.Variable(value.astype(np.float32), trainable=False)

  module = tf.Module()
  if architecture == 'cnn':
    module.weights = [variable(3, 3, 1, 32), variable(32),
                      variable(3, 3, 32, 64), variable(64),
                      variable(5 * 5 * 64, 128), variable(128),
                      variable(128, 10), variable(10)]

    def scores(images):
      conv1, bias1, conv2, bias2, dense1, bias3, dense2, bias4 = module.weights
      x = tf.reshape(images, [-1, features.IMAGE_ROWS, features.IMAGE_COLS, 1])
      x = tf.nn.relu(tf.nn.conv2d(x, conv1, 1, 'VALID') + bias1)
      x = tf.nn.max_pool2d(x, 2, 2, 'VALID')
      x = tf.nn.relu(tf.nn.conv2d(x, conv2, 1, 'VALID') + bias2)
      x = tf.nn.max_pool2d(x, 2, 2, 'VALID')
      x = tf.nn.relu(tf.matmul(tf.reshape(x, [-1, 5 * 5 * 64]), dense1) + bias3)
      return tf.nn.softmax(tf.matmul(x, dense2) + bias4)
  else:
    module.weights = [variable(features.IMAGE_PIXELS, features.NUM_CLASSES,
                               scale=0.1),
                      variable(features.NUM_CLASSES, scale=0.1)]

    def scores(images):
      kernel, bias = module.weights
      return tf.nn.softmax(tf.matmul(images, kernel) + bias)

  @tf.function(input_signature=[
      tf.TensorSpec([None, features.IMAGE_PIXELS], tf.float32)])
  def predict_images(images):
    return {contract.SCORES_OUTPUT: scores(images)}

  module.predict_images = predict_images
  tf.saved_model.save(module, export_dir,
                      signatures={contract.IMAGES_SIGNATURE: predict_images})


def recorded_figures(results, batch: int, memory) -> dict:
  """The row of bench/results/serving_benchmark.csv: the pooled figures the
  targets and the docs quote, at the default concurrency levels (empty where a
  level was not run)."""

  def figure(kind, size, concurrency, what):
    result = results.get((kind, size, concurrency))
    if result is None or not len(result.latencies):
      return None
    if what == 'req_s':
      return round(result.throughput)
    if what == 'images_s':
      return round(result.throughput * result.images_per_request)
    if what == 'server_cores':
      return round(result.cpu[0], 2)
    percentile = {'p50_ms': 50, 'p99_ms': 99}[what]
    return round(float(np.percentile(result.latencies, percentile)) * 1000, 2)

  def ratio(size, concurrency):
    grpc_rate = figure('grpc', size, concurrency, 'req_s')
    local = results.get(('local', size, concurrency))
    if grpc_rate is None or local is None or not local.throughput:
      return None
    return round(results['grpc', size, concurrency].throughput /
                 local.throughput, 2)

  first, last, peak = memory or (None, None, None)
  return {
      'grpc_1img_c1_req_s': figure('grpc', 1, 1, 'req_s'),
      'grpc_1img_c8_req_s': figure('grpc', 1, 8, 'req_s'),
      'grpc_1img_c32_req_s': figure('grpc', 1, 32, 'req_s'),
      'inproc_1img_c8_req_s': figure('local', 1, 8, 'req_s'),
      'inproc_1img_c32_req_s': figure('local', 1, 32, 'req_s'),
      'ratio_1img_c32': ratio(1, 32),
      'grpc_1img_c8_p50_ms': figure('grpc', 1, 8, 'p50_ms'),
      'grpc_1img_c8_p99_ms': figure('grpc', 1, 8, 'p99_ms'),
      'grpc_batch_c8_images_s': figure('grpc', batch, 8, 'images_s'),
      'inproc_batch_c8_images_s': figure('local', batch, 8, 'images_s'),
      'grpc_batch_c32_images_s': figure('grpc', batch, 32, 'images_s'),
      'inproc_batch_c32_images_s': figure('local', batch, 32, 'images_s'),
      'server_cores_1img_c32': figure('grpc', 1, 32, 'server_cores'),
      'errors': sum(r.errors for key, r in results.items() if key[0] == 'grpc'),
      'memory_start_mb': None if first is None else round(first),
      'memory_end_mb': None if last is None else round(last),
      'memory_peak_mb': None if peak is None else round(peak),
  }


def latest_version_dir(base_path: str) -> str:
  versions = storage_path.version_dirs(base_path)
  if not versions:
    raise SystemExit(f'no model versions under {base_path}')
  return versions[max(versions)]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model_base_path', default=None,
                      help='Default: a stand-in model (write_stand_in).')
  parser.add_argument('--stand_in', choices=['linear', 'cnn'], default='cnn',
                      help='Stand-in model without --model_base_path: a CNN '
                           'as costly as the trained one, or the linear test '
                           'model.')
  parser.add_argument('--model_name', default=contract.MODEL_NAME)
  parser.add_argument('--concurrency', default='1,8,32')
  parser.add_argument('--batch', type=int, default=32,
                      help='Images per request in the batched runs.')
  parser.add_argument('--seconds', type=float, default=4.0, help='Per run.')
  parser.add_argument('--warmup', type=float, default=1.0, help='Per run.')
  parser.add_argument('--rounds', type=int, default=3,
                      help='Times the whole gRPC-then-in-process sequence is '
                           'repeated and pooled: on a shared machine one round '
                           "alone can swing the ratio by 15%%.")
  parser.add_argument('--batching_parameters_file',
                      default=os.path.join(REPO, 'serving', 'batching_parameters.txt'),
                      help="Server batching ('' disables batching).")
  parser.add_argument('--memory_seconds', type=float, default=60.0,
                      help='Length of the load during which the server\'s '
                      'resident memory is sampled (0: skip).')
  parser.add_argument('--server_flags', default='',
                      help="More `python -m serving` flags, e.g. "
                           "'--tensorflow_intra_op_parallelism=0'.")
  args = parser.parse_args()
  levels = [int(c) for c in args.concurrency.split(',')]
  if args.rounds < 1:
    parser.error('--rounds must be at least 1')

  scratch = None
  base_path = args.model_base_path
  if base_path is None:
    scratch = tempfile.mkdtemp(prefix='serving-bench-')
    base_path = os.path.join(scratch, args.model_name)
    write_stand_in(os.path.join(base_path, '1'), args.stand_in)
  base_path = os.path.abspath(base_path)

  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(256, 784), dtype=np.uint8)
  singles = [images_request(images[i:i + 1], args.model_name) for i in range(256)]
  batches = [images_request(images[i:i + args.batch], args.model_name)
             for i in range(0, 256 - args.batch + 1, args.batch)]
  single_floats = [serving_requests.unit_floats(images[i:i + 1])
                   for i in range(256)]
  batch_floats = [serving_requests.unit_floats(images[i:i + args.batch])
                  for i in range(0, 256 - args.batch + 1, args.batch)]

  print(f'model: {latest_version_dir(base_path)}' +
        ('' if args.model_base_path else f' (stand-in: {args.stand_in})'))
  request_threads = 2 * max(levels)  # start_server says why
  print(f'server batching: {args.batching_parameters_file or "off"}; '
        f'--grpc_max_threads={request_threads}; {os.cpu_count()} cores; '
        f'{args.seconds:g} s per run')
  rounds = {}
  model = None
  for round_number in range(1, args.rounds + 1):
    print(f'round {round_number}/{args.rounds}: gRPC', flush=True)
    server = start_server(base_path, args.model_name,
                          args.batching_parameters_file, request_threads,
                          args.server_flags.split())
    target = server.grpc_target
    try:
      for size, requests, label in ((1, singles, '1 image'),
                                    (args.batch, batches, f'{args.batch} images')):
        for c in levels:
          rounds.setdefault(('grpc', size, c), []).append(grpc_load(
              f'gRPC Predict, {label}', target, requests, c, args.seconds,
              args.warmup, size, server.pid))
      memory = (memory_under_load(server.pid, target, singles, args.memory_seconds)
                if args.memory_seconds > 0 and round_number == args.rounds
                else None)
    finally:
      server.stop()

    # The ceiling, with the server gone so that it has the cores to itself.
    print(f'round {round_number}/{args.rounds}: in-process', flush=True)
    if model is None:
      model = tf.saved_model.load(latest_version_dir(base_path))
    function = model.signatures[contract.IMAGES_SIGNATURE]
    for size, inputs, label in ((1, single_floats, '1 image'),
                                (args.batch, batch_floats, f'{args.batch} images')):
      for c in levels:
        rounds.setdefault(('local', size, c), []).append(in_process_load(
            f'in-process call, {label}', function, inputs, c, args.seconds,
            args.warmup, size))
  results = {key: Result.pooled(runs) for key, runs in rounds.items()}
  if args.rounds > 1:
    top = levels[-1]
    each = [g.throughput / l.throughput
            for g, l in zip(rounds['grpc', 1, top], rounds['local', 1, top])]
    print(f'single-image gRPC / in-process at concurrency {top}, round by round: '
          + ', '.join(f'{r:.2f}x' for r in each))

  print(HEADER)
  for size in (1, args.batch):
    for c in levels:
      print(results['local', size, c].row())
    for c in levels:
      print(results['grpc', size, c].row(results['local', size, c]))
  print()
  if 32 in levels:
    ratio = (results['grpc', 1, 32].throughput /
             results['local', 1, 32].throughput)
    print(f'target, single-image gRPC at concurrency 32: {ratio:.2f}x in-process '
          f'single-image calls (>= 1.0x: {"met" if ratio >= 1 else "NOT met"})')
  if 8 in levels:
    p99 = np.percentile(results['grpc', 1, 8].latencies, 99) * 1000
    print(f'target, single-image gRPC at concurrency 8: p99 {p99:.2f} ms '
          f'(< 10 ms: {"met" if p99 < 10 else "NOT met"})')
  if memory:
    first, last, peak = memory
    print(f'server resident memory under {args.memory_seconds:g} s of single-image '
          f'load at concurrency 32: {first:.0f} MB after the first 10%, {last:.0f} '
          f'MB at the end, peak {peak:.0f} MB ({last - first:+.0f} MB)')
  model_setting = (args.model_base_path if args.model_base_path
                   else f'stand-in:{args.stand_in}')
  bench_results.record_and_say(
      'serving_benchmark', recorded_figures(results, args.batch, memory), {
          'model': model_setting,
          'version': os.path.basename(latest_version_dir(base_path)),
          'rounds': args.rounds, 'seconds': f'{args.seconds:g}',
          'batch': args.batch, 'concurrency': args.concurrency,
          'batching': (os.path.relpath(args.batching_parameters_file, REPO)
                       if args.batching_parameters_file else 'off'),
          'grpc_max_threads': request_threads,
          'server_flags': args.server_flags or 'none'})
  if scratch:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
  main()
