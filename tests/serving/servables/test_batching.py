"""Batching (serving/servables/batching.py): TF Serving's batching parameters
file, and the batch scheduler that merges concurrent requests into one model
call."""

import os
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf

from pipeline import config as config_lib
from serving.core import errors
from serving.servables import batching


# --- batching parameters ------------------------------------------------------------
def test_shipped_batching_parameters_file_parses():
  params = batching.load_batching_parameters(
      os.path.join(config_lib.REPO_ROOT, 'serving',
                   'batching_parameters.txt'))
  assert params.max_batch_size == 64
  assert params.batch_timeout_micros == 0
  assert params.num_batch_threads == 2


def test_batching_parameters_text_format():
  params = batching.parse_batching_parameters('''
      # TF Serving's own example values
      max_batch_size { value: 128 }
      batch_timeout_micros {value:5000}
      thread_pool_name { value: "pool" }
      allowed_batch_sizes: 32
      allowed_batch_sizes: 128
      pad_variable_length_inputs: true
  ''')
  assert params.max_batch_size == 128
  assert params.batch_timeout_micros == 5000
  assert params.thread_pool_name == 'pool'
  assert params.allowed_batch_sizes == (32, 128)
  assert params.pad_variable_length_inputs
  with pytest.raises(ValueError, match='max_batch_sise'):
    batching.parse_batching_parameters('max_batch_sise { value: 1 }')
  with pytest.raises(ValueError, match='max_batch_size'):
    batching.parse_batching_parameters('max_batch_size { value: 0 }')


# --- the batch scheduler ---------------------------------------------------------------
def _doubling_model(calls):
  def run(inputs):
    calls.append(len(inputs['x']))
    time.sleep(0.002)  # Long enough for followers to queue up.
    if np.any(inputs['x'] < 0):
      raise tf.errors.InvalidArgumentError(None, None, 'negative input')
    return {'y': inputs['x'] * 2}
  return run


def _submit_all(scheduler, values, rows=1):
  results = [None] * len(values)

  def client(i):
    x = np.full((rows, 3), values[i], np.float32)
    try:
      results[i] = scheduler.submit({'x': x}, rows)['y']
    except errors.ServingError as e:
      results[i] = e

  threads = [threading.Thread(target=client, args=(i,))
             for i in range(len(values))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join(timeout=30)
  assert not any(thread.is_alive() for thread in threads), 'scheduler hangs'
  return results


@pytest.mark.parametrize('threads,timeout_micros', [(1, 0), (2, 0), (1, 5000)])
def test_scheduler_batches_concurrent_requests(threads, timeout_micros):
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(
          max_batch_size=8, num_batch_threads=threads,
          batch_timeout_micros=timeout_micros))
  values = list(range(1, 41))
  results = _submit_all(scheduler, values)
  for value, result in zip(values, results):
    np.testing.assert_array_equal(result, np.full((1, 3), 2 * value))
  assert sum(calls) == len(values)
  assert max(calls) <= 8
  assert max(calls) > 1, calls


def test_scheduler_keeps_its_batch_slots_under_load():
  """A request handed a batch slot while another leader runs its rows must pass
  the slot on: a lost slot leaves two batch threads running one batch at a time
  for good. Rounds of concurrent requests with uneven model calls reorder the
  wake-ups that lose it; then two requests must run their batches at once."""
  rng = np.random.default_rng(0)
  both_running = threading.Barrier(2, timeout=10)
  meet = threading.Event()

  def model(inputs):
    if meet.is_set():
      both_running.wait()  # Breaks (an error) unless two batches run at once.
    else:
      time.sleep(rng.random() * 0.001)
    return {'y': inputs['x']}

  scheduler = batching.BatchScheduler(model, batching.BatchingParameters(
      max_batch_size=2, num_batch_threads=2))
  for _ in range(300):
    _submit_all(scheduler, [1] * 16)
  meet.set()
  results = _submit_all(scheduler, [1, 2], rows=2)  # A full batch each.
  assert not any(isinstance(r, errors.ServingError) for r in results), results


def test_scheduler_isolates_a_failing_request():
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(
          max_batch_size=16, batch_timeout_micros=20000))
  values = [1, 2, -3, 4, 5]
  results = _submit_all(scheduler, values)
  assert isinstance(results[2], errors.ServingError)
  assert results[2].code == grpc.StatusCode.INVALID_ARGUMENT
  assert 'negative input' in results[2].message
  for i in (0, 1, 3, 4):
    np.testing.assert_array_equal(results[i], np.full((1, 3), 2 * values[i]))


def test_scheduler_runs_requests_larger_than_a_batch_alone():
  calls = []
  scheduler = batching.BatchScheduler(
      _doubling_model(calls), batching.BatchingParameters(max_batch_size=4))
  results = _submit_all(scheduler, [1, 2, 3], rows=10)
  assert all(r.shape == (10, 3) for r in results)
  assert calls == [10, 10, 10]


def test_scheduler_refuses_work_beyond_its_queue():
  release = threading.Event()

  def slow(inputs):
    release.wait(10)
    return {'y': inputs['x']}

  scheduler = batching.BatchScheduler(slow, batching.BatchingParameters(
      max_batch_size=1, max_enqueued_batches=2))
  threads = [threading.Thread(target=scheduler.submit,
                              args=({'x': np.zeros((1, 1))}, 1))
             for _ in range(3)]  # One running, two queued: the queue is full.
  for thread in threads:
    thread.start()
  deadline = time.monotonic() + 10
  while scheduler._queued_rows < 2 and time.monotonic() < deadline:  # pylint: disable=protected-access
    time.sleep(0.01)
  with pytest.raises(errors.ServingError) as raised:
    scheduler.submit({'x': np.zeros((1, 1))}, 1)
  assert raised.value.code == grpc.StatusCode.UNAVAILABLE
  release.set()
  for thread in threads:
    thread.join(timeout=10)

