"""Soak: mixed good and malformed traffic against a real server while versions swap.

    ./mnist-tfx shell -c 'python bench/soak_benchmark.py --model outputs/smoke/serving/mnist/1'

Starts `python -m serving` on loopback (gRPC and REST) on a base path of its own
holding a copy of --model as version 1, and pushes a new version (a copy, renamed
into place as the Pusher does) every --swap_seconds. Meanwhile --concurrency
client threads send requests for --seconds: most are good (gRPC Predict and
Classify, REST predict), the rest malformed (bytes that are no JSON, JSON nested
too deep, unpaired surrogates, unknown methods, inputs that are no tf.Example,
wrong dtypes and shapes, unknown models).

It prints the good requests that failed (the goal is 0), every answer code the
malformed ones got (a 5xx, INTERNAL or UNKNOWN among them is a server error for a
client's mistake, also counted), and the server's resident memory at the start,
middle and end, then appends that row to bench/results/soak_benchmark.csv.

A script, not a test: it takes --seconds (ten minutes by default).
"""

import argparse
import collections
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import grpc  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow_serving.apis import classification_pb2  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top,wrong-import-position
from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top,wrong-import-position

from models import serving_contract as contract  # pylint: disable=g-import-not-at-top,wrong-import-position
from models import serving_requests  # pylint: disable=g-import-not-at-top,wrong-import-position
from serving.model_servers import process as process_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

# bench/results.py and the serving benchmark's server helpers, beside this script.
import results as bench_results  # pylint: disable=g-import-not-at-top,wrong-import-position
import serving_benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position

MODEL = contract.MODEL_NAME
SERVER_ERRORS = {'INTERNAL', 'UNKNOWN', 'DATA_LOSS', 'UNAVAILABLE'}


class Tally:
  """Answers counted by kind, from many threads."""

  def __init__(self):
    self._lock = threading.Lock()
    self.good = collections.Counter()
    self.malformed = collections.Counter()

  def add(self, good: bool, code: str) -> None:
    with self._lock:
      (self.good if good else self.malformed)[code] += 1


def _grpc_code(call, request) -> str:
  try:
    call(request, timeout=30)
    return 'OK'
  except grpc.RpcError as e:
    return e.code().name


def _rest_code(port: int, method: str, path: str, body: bytes) -> str:
  connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
  try:
    connection.request(method, path, body=body,
                       headers={'Content-Type': 'application/json'})
    response = connection.getresponse()
    response.read()
    return f'HTTP {response.status}'
  except (OSError, http.client.HTTPException) as e:
    return f'dropped ({type(e).__name__})'
  finally:
    connection.close()


def _failed(code: str) -> bool:
  """A server error, or no answer at all."""
  return (code in SERVER_ERRORS or code.startswith('dropped') or
          (code.startswith('HTTP ') and int(code[5:]) >= 500))


def _good_requests(stub, rest_port: int, rng):
  images = rng.integers(0, 256, size=(rng.integers(1, 4), 784), dtype=np.uint8)
  predict = predict_pb2.PredictRequest()
  predict.model_spec.name = MODEL
  predict.model_spec.signature_name = contract.IMAGES_SIGNATURE
  predict.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(images.astype(np.float32) / 255.0))
  classify = classification_pb2.ClassificationRequest()
  classify.model_spec.name = MODEL
  classify.model_spec.signature_name = contract.CLASSIFY_SIGNATURE
  classify.input.example_list.examples.extend(
      example_pb2.Example.FromString(e)
      for e in serving_requests.encode_examples(images))
  body = json.dumps({'signature_name': contract.IMAGES_SIGNATURE,
                     'instances': (images / 255.0).tolist()}).encode()
  return [lambda: _grpc_code(stub.Predict, predict),
          lambda: _grpc_code(stub.Classify, classify),
          lambda: _rest_code(rest_port, 'POST', f'/v1/models/{MODEL}:predict',
                             body)]


def _malformed_requests(stub, rest_port: int, rng):
  path = f'/v1/models/{MODEL}:predict'
  depth = int(rng.integers(100, 3000))
  junk = predict_pb2.PredictRequest()
  junk.model_spec.name = MODEL
  junk.inputs[contract.EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(
      [rng.bytes(int(rng.integers(1, 60)))], tf.string))
  wrong_dtype = predict_pb2.PredictRequest()
  wrong_dtype.model_spec.name = MODEL
  wrong_dtype.model_spec.signature_name = contract.IMAGES_SIGNATURE
  wrong_dtype.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(['not pixels']))
  wrong_shape = predict_pb2.PredictRequest()
  wrong_shape.CopyFrom(wrong_dtype)
  wrong_shape.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(np.zeros((2, 5), np.float32)))
  unknown = predict_pb2.PredictRequest()
  unknown.model_spec.name = 'no-such-model'
  return [
      lambda: _rest_code(rest_port, 'POST', path, rng.bytes(200)),
      lambda: _rest_code(rest_port, 'POST', path, b'{"instances": ' +
                         b'[' * depth + b'1' + b']' * depth + b'}'),
      lambda: _rest_code(rest_port, 'POST', path,
                         b'{"instances": ["\\udcff"]}'),
      lambda: _rest_code(rest_port, 'PUT', path, b'{}'),
      lambda: _rest_code(rest_port, 'POST', path, b'{"instances": [[1, [2]]]}'),
      lambda: _grpc_code(stub.Predict, junk),
      lambda: _grpc_code(stub.Predict, wrong_dtype),
      lambda: _grpc_code(stub.Predict, wrong_shape),
      lambda: _grpc_code(stub.Predict, unknown),
  ]


def _client(stub, rest_port, tally, stop, seed, malformed_share):
  rng = np.random.default_rng(seed)
  while not stop.is_set():
    good = rng.random() >= malformed_share
    requests = (_good_requests if good else _malformed_requests)(
        stub, rest_port, rng)
    tally.add(good, requests[int(rng.integers(len(requests)))]())


def _push(base_path: str, model_dir: str, version: int) -> None:
  staging = tempfile.mkdtemp(prefix=f'.incoming-{version}-', dir=base_path)
  shutil.copytree(model_dir, os.path.join(staging, 'model'))
  os.rename(os.path.join(staging, 'model'), os.path.join(base_path, str(version)))
  os.rmdir(staging)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--model', required=True,
                      help='a version directory of a pushed model')
  parser.add_argument('--seconds', type=float, default=600)
  parser.add_argument('--concurrency', type=int, default=32)
  parser.add_argument('--swap_seconds', type=float, default=30)
  parser.add_argument('--malformed_share', type=float, default=0.3)
  args = parser.parse_args(argv)

  root = tempfile.mkdtemp(prefix='soak-')
  base_path = os.path.join(root, MODEL)
  os.makedirs(base_path)
  _push(base_path, args.model, 1)
  server = serving_benchmark.start_server(
      base_path, MODEL, batching_file='',
      grpc_max_threads=2 * args.concurrency,
      extra_flags=['--file_system_poll_wait_seconds=1'],
      rest_api_port=process_lib.free_port())
  rest_port = server.rest_port
  tally, stop = Tally(), threading.Event()
  channel = grpc.insecure_channel(server.grpc_target)
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  clients = [threading.Thread(target=_client, daemon=True, args=(
      stub, rest_port, tally, stop, seed, args.malformed_share))
             for seed in range(args.concurrency)]
  memory = {'start': serving_benchmark.resident_mb(server.pid)}
  started = time.monotonic()
  for client in clients:
    client.start()
  version, next_swap, middle_taken = 1, started + args.swap_seconds, False
  try:
    while time.monotonic() - started < args.seconds:
      time.sleep(0.5)
      if not server.alive():
        print('the server exited', file=sys.stderr)
        break
      if time.monotonic() >= next_swap:
        version += 1
        _push(base_path, args.model, version)
        next_swap += args.swap_seconds
      if not middle_taken and time.monotonic() - started >= args.seconds / 2:
        memory['middle'] = serving_benchmark.resident_mb(server.pid)
        middle_taken = True
    memory['end'] = serving_benchmark.resident_mb(server.pid)
  finally:
    stop.set()
    for client in clients:
      client.join(timeout=60)
    channel.close()
    server.stop()
    shutil.rmtree(root, ignore_errors=True)

  good_failed = sum(n for code, n in tally.good.items()
                    if code not in ('OK', 'HTTP 200'))
  server_errors = sum(n for code, n in tally.malformed.items() if _failed(code))
  print(f'{sum(tally.good.values())} good requests, {good_failed} failed: '
        f'{dict(tally.good)}')
  print(f'{sum(tally.malformed.values())} malformed requests, {server_errors} '
        f'got a server error or no answer: {dict(tally.malformed)}')
  print(f'versions pushed while serving: {version - 1}')
  print('server resident memory (MB): ' + ', '.join(
      f'{k} {v:.0f}' for k, v in memory.items()))
  bench_results.record_and_say('soak_benchmark', {
      'seconds': args.seconds, 'good_requests': sum(tally.good.values()),
      'good_failed': good_failed,
      'malformed_requests': sum(tally.malformed.values()),
      'malformed_server_errors': server_errors,
      'versions_pushed': version - 1,
      'rss_start_mb': round(memory['start']),
      'rss_middle_mb': round(memory.get('middle', float('nan'))),
      'rss_end_mb': round(memory.get('end', float('nan'))),
      'malformed_codes': ';'.join(f'{k}={v}' for k, v in
                                  sorted(tally.malformed.items())),
  }, {'concurrency': args.concurrency, 'swap_seconds': args.swap_seconds,
      'malformed_share': args.malformed_share,
      'model': os.path.basename(os.path.dirname(os.path.abspath(args.model)))})
  return 1 if good_failed or server_errors else 0


if __name__ == '__main__':
  sys.exit(main())
