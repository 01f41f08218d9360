"""Server-side batching: concurrent small requests run as one model call.

A model call has a fixed cost (Python dispatch, TensorFlow's executor, oneDNN
set-up) that dominates for one 28x28 image; running the images of several
concurrent requests in one call pays it once. Each signature of each loaded model
version gets a `BatchScheduler`: requests queue up; while fewer than
`num_batch_threads` batches run, the scheduler takes as many queued rows as fit in
`max_batch_size` -- after waiting up to `batch_timeout_micros` for more, or with 0
just what queued while the previous batch ran -- concatenates the inputs, runs the
model once and hands every request its own rows of the outputs.

There are no scheduler threads: the threads of the requests themselves run the
batches (leader/followers). A request that finds a batch slot free leads: it
takes a batch, which includes itself, runs it and wakes the followers whose rows
it ran; when it is done it passes the slot to the oldest waiting request. So a
lone request runs at once in its own thread, and under load each batch costs one
thread wake-up per follower and nothing more: in Python, a hand-off between
threads costs about as much as running a small model.

The knobs are TF Serving's (BatchingParameters, tensorflow_serving/batching/
README.md) and are read from the same text-format file `tensorflow_model_server
--batching_parameters_file` takes, so one file tunes either server.
"""

import collections
import dataclasses
import re
import threading
import time
from typing import Callable, Dict, List

import numpy as np

from serving.core import errors

Tensors = Dict[str, np.ndarray]
RunFn = Callable[[Tensors], Tensors]


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
  """TF Serving's BatchingParameters; fields this server does not use are kept."""

  max_batch_size: int = 64
  batch_timeout_micros: int = 0
  max_enqueued_batches: int = 100
  num_batch_threads: int = 1
  # Accepted for compatibility with TF Serving's file; no effect here.
  allowed_batch_sizes: tuple = ()
  pad_variable_length_inputs: bool = False
  thread_pool_name: str = ''
  enable_large_batch_splitting: bool = True
  max_execution_batch_size: int = 0

  def __post_init__(self):
    for name in ('max_batch_size', 'num_batch_threads', 'max_enqueued_batches'):
      if getattr(self, name) < 1:
        raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
    if self.batch_timeout_micros < 0:
      raise ValueError('batch_timeout_micros must be >= 0')


_TOKEN = re.compile(
    r'\s*(?:(?P<wrapped>\w+)\s*\{\s*value\s*:\s*(?P<wvalue>"[^"]*"|[^\s}]+)\s*\}'
    r'|(?P<plain>\w+)\s*:\s*(?P<pvalue>"[^"]*"|\S+))\s*')


def _scalar(text: str, field: str):
  if text.startswith('"'):
    return text.strip('"')
  if text in ('true', 'false'):
    return text == 'true'
  try:
    return int(text)
  except ValueError:
    raise ValueError(f'{field}: expected a number, got {text!r}') from None


def parse_batching_parameters(text: str) -> BatchingParameters:
  """Parses the text-format BatchingParameters proto TF Serving reads."""
  text = '\n'.join(line.split('#', 1)[0] for line in text.splitlines())
  values, allowed, position = {}, [], 0
  known = {f.name for f in dataclasses.fields(BatchingParameters)}
  while position < len(text.rstrip()):
    match = _TOKEN.match(text, position)
    if not match:
      raise ValueError(
          f'cannot parse batching parameters near {text[position:][:40]!r}')
    position = match.end()
    field = match.group('wrapped') or match.group('plain')
    value = _scalar(match.group('wvalue') or match.group('pvalue'), field)
    if field not in known:
      raise ValueError(
          f'unknown batching parameter {field!r}; known: {sorted(known)}')
    if field == 'allowed_batch_sizes':
      allowed.append(value)
    else:
      values[field] = value
  if allowed:
    values['allowed_batch_sizes'] = tuple(allowed)
  return BatchingParameters(**values)


def load_batching_parameters(path: str) -> BatchingParameters:
  with open(path) as f:
    try:
      return parse_batching_parameters(f.read())
    except ValueError as e:
      raise ValueError(f'{path}: {e}') from e


class _Task:
  """One request waiting in a queue; guarded by the scheduler's lock."""

  __slots__ = ('inputs', 'rows', 'enqueued', 'wakeup', 'taken', 'finished',
               'promoted', 'result')

  def __init__(self, inputs: Tensors, rows: int, lock: threading.Lock):
    self.inputs = inputs
    self.rows = rows
    self.enqueued = time.monotonic()
    self.wakeup = threading.Condition(lock)
    self.taken = False     # In a batch that is running.
    self.finished = False  # `result` holds the outputs or an exception.
    self.promoted = False  # Holds a batch slot: leads batches.
    self.result = None


class BatchScheduler:
  """Batches the requests of one signature; see the module docstring."""

  def __init__(self, run: RunFn, params: BatchingParameters, name: str = ''):
    self._run = run
    self._params = params
    self._name = name
    self._timeout = params.batch_timeout_micros / 1e6
    self._capacity = params.max_enqueued_batches * params.max_batch_size
    self._lock = threading.Lock()
    self._arrived = threading.Condition(self._lock)  # For batch timeouts.
    self._queue: collections.deque = collections.deque()
    self._queued_rows = 0
    self._running = 0  # Batch slots held by leaders.

  def submit(self, inputs: Tensors, rows: int) -> Tensors:
    """Runs one request of `rows` rows, batched; returns its rows of the outputs."""
    with self._lock:
      if self._queue and self._queued_rows + rows > self._capacity:
        raise errors.ServingError(
            errors.Code.UNAVAILABLE,
            'The batch scheduling queue to which this task was submitted is '
            'full')
      task = _Task(inputs, rows, self._lock)
      self._queue.append(task)
      self._queued_rows += rows
      self._arrived.notify()
      leading = self._running < self._params.num_batch_threads
      if leading:
        self._running += 1
        task.promoted = True
    while True:
      if not leading:
        with self._lock:
          while not (task.finished or task.promoted):
            task.wakeup.wait()
          if task.finished:
            if task.promoted:
              # Given a slot, but another leader ran our rows first: pass the
              # slot on, or it stays taken for good.
              self._give_up_slot(task)
            return self._outcome(task)
        leading = True
      batch = self._take_batch()
      if batch:
        self._finish(batch, self._run_batch(batch))
      with self._lock:
        if task.finished or task.taken:
          # Done, or another leader runs our rows: give the slot away.
          self._give_up_slot(task)
          if task.finished:
            return self._outcome(task)
          leading = False

  def close(self) -> None:
    """Nothing to stop: there are no scheduler threads."""

  @staticmethod
  def _outcome(task: _Task) -> Tensors:
    if isinstance(task.result, BaseException):
      raise task.result
    return task.result

  def _give_up_slot(self, task: _Task) -> None:
    """With the lock held: `task` no longer leads; its slot goes on."""
    task.promoted = False
    self._pass_slot()

  def _pass_slot(self) -> None:
    """With the lock held: the slot goes to the oldest queued request without
    one (a queued request is never running, so it is waiting), or is freed."""
    for waiting in self._queue:
      if not waiting.promoted:
        waiting.promoted = True
        waiting.wakeup.notify()
        return
    self._running -= 1

  def _take_batch(self) -> List[_Task]:
    limit = self._params.max_batch_size
    with self._lock:
      if self._timeout > 0:
        while self._queue and self._queued_rows < limit:
          remaining = self._queue[0].enqueued + self._timeout - time.monotonic()
          if remaining <= 0:
            break
          self._arrived.wait(remaining)
      batch, rows = [], 0
      while self._queue and (not batch or rows + self._queue[0].rows <= limit):
        task = self._queue.popleft()
        task.taken = True
        batch.append(task)
        rows += task.rows
      self._queued_rows -= rows
      return batch

  def _finish(self, batch: List[_Task], results: List) -> None:
    with self._lock:
      for task, result in zip(batch, results):
        task.result = result
        task.finished = True
        task.wakeup.notify()

  def _run_batch(self, batch: List[_Task]) -> List:
    """One model call for the batch; the outputs or an error per request."""
    if len(batch) == 1:
      return [self._call(batch[0].inputs)]
    try:
      merged = {name: np.concatenate([task.inputs[name] for task in batch])
                for name in batch[0].inputs}
      return _split(self._run(merged), [task.rows for task in batch])
    except Exception:  # pylint: disable=broad-except
      # One bad request (say, an unparsable tf.Example) fails the whole call;
      # run each alone so that only that request gets the error.
      return [self._call(task.inputs) for task in batch]

  def _call(self, inputs: Tensors):
    try:
      return self._run(inputs)
    except Exception as e:  # pylint: disable=broad-except
      return errors.from_exception(e)


def _split(outputs: Tensors, rows: List[int]) -> List[Tensors]:
  total = sum(rows)
  for name, value in outputs.items():
    if value.ndim == 0 or value.shape[0] != total:
      raise errors.ServingError(
          errors.Code.INTERNAL,
          f'output {name!r} has shape {list(value.shape)}, cannot split a '
          f'batch of {total} rows')
  bounds = np.cumsum(rows)[:-1]
  pieces = {name: np.split(value, bounds) for name, value in outputs.items()}
  return [{name: pieces[name][i] for name in outputs} for i in range(len(rows))]

