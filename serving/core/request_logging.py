"""Request logging: TF Serving's `logging_config`, written as PredictionLog TFRecords.

A model in the --model_config_file may carry TF Serving's LoggingConfig
(tensorflow_serving/config/logging_config.proto):

    logging_config {
      log_collector_config { type: "tfrecord" filename_prefix: "/logs/mnist" }
      sampling_config { sampling_rate: 0.1 }
    }

As in TF Serving, every successful Predict, Classify, Regress and MultiInference
call of that model, over gRPC or REST alike, is sampled with probability
`sampling_rate` (0: none, 1: all), independently per request, and a sampled call
is written as one tensorflow.serving.PredictionLog (apis/prediction_log.proto):
the request and response as the server received and answered them, and
LogMetadata with the response's ModelSpec (name, version, signature), the
SamplingConfig, the --saved_model_tags and the time (apis/logging.proto).

What follows TF Serving's code:
- core/request_logger.cc, RequestLogger::Log: sample with the rate, then build
  the log message and hand it to the LogCollector; the metadata gets the
  sampling config and the SavedModel tags.
- core/server_request_logger.cc: one set of loggers per model name, replaced as
  a whole when the config changes; a logger whose LoggingConfig is unchanged
  (same deterministic serialization) is kept, and models with equal configs
  share one logger (FindOrCreateLogger).
- model_servers/server_core.cc, MaybeUpdateServerRequestLogger: the loggers are
  updated from the ModelConfigList at start and at every config reload.
- core/log_collector.{h,cc}: the collector is looked up by
  `log_collector_config.type`; an unknown type is an error ("Cannot find
  LogCollector::Factory for type: ...").

TF Serving's open-source build registers no LogCollector at all, so
tensorflow_model_server refuses a config with a logging_config ("No
request-logger-creator provided."). This server registers one collector type,
`tfrecord`: uncompressed TFRecord files of serialized PredictionLog protos (the
format of TF Serving's warm-up files), named

    <filename_prefix>-<UTC start time, YYYYMMDDTHHMMSSZ>-<pid>-<n>.tfrecord

where the time and pid are those of the server process and n counts the
collectors that process opened (a changed logging_config opens a new file), so
restarts and replicas never write into each other's files. A file is created with
its first record (a sampling rate of 0 writes no file). Records are written by a
background thread, which flushes after every batch of queued records, so a file
is readable while the server runs (a reader may find the record being written
incomplete) and complete once the server has stopped cleanly. Request threads
only sample, copy the protos and queue them; with no logging_config the cost is
one dictionary lookup per request.
"""

import logging
import os
import queue
import random
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import message as message_lib
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import logging_config_pb2

log = logging.getLogger(__name__)

TFRECORD_COLLECTOR = 'tfrecord'
COLLECTOR_TYPES = (TFRECORD_COLLECTOR,)
FILE_SUFFIX = '.tfrecord'
# Records waiting for the writer thread; beyond this they are dropped (and
# counted) rather than holding requests up or growing without bound.
MAX_QUEUED_RECORDS = 10000

# PredictionLog's log_type fields, by API.
PREDICT, CLASSIFY, REGRESS, MULTI_INFERENCE = (
    'predict_log', 'classify_log', 'regress_log', 'multi_inference_log')

LoggingConfig = logging_config_pb2.LoggingConfig


def check_config(config: LoggingConfig, where: str) -> None:
  """Raises ValueError for a LoggingConfig this server cannot log with."""
  collector = config.log_collector_config
  if collector.type not in COLLECTOR_TYPES:
    raise ValueError(
        f'{where}: Cannot find LogCollector::Factory for type: '
        f'{collector.type!r} (this server has: {", ".join(COLLECTOR_TYPES)})')
  if not collector.filename_prefix:
    raise ValueError(f'{where}: log_collector_config.filename_prefix is empty')


def _config_key(config: LoggingConfig) -> bytes:
  return config.SerializeToString(deterministic=True)


class TFRecordCollector:
  """A LogCollector writing serialized records to one TFRecord file.

  Thread-safe: collect() queues, one writer thread writes and flushes.
  """

  _counter_lock = threading.Lock()
  _opened = 0
  _started = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())

  def __init__(self, filename_prefix: str):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    directory = os.path.dirname(filename_prefix)
    try:
      if directory:
        tf.io.gfile.makedirs(directory)
      if '://' not in directory and not os.access(directory or '.', os.W_OK):
        raise PermissionError(f'{directory or "."} is not writable')
    except (OSError, tf.errors.OpError) as e:
      raise ValueError(
          f'cannot write request logs with filename_prefix {filename_prefix!r}: '
          f'{e}') from None
    with TFRecordCollector._counter_lock:
      number = TFRecordCollector._opened
      TFRecordCollector._opened += 1
    self.path = (f'{filename_prefix}-{TFRecordCollector._started}-'
                 f'{os.getpid()}-{number}{FILE_SUFFIX}')
    self.records = 0  # written
    self.dropped = 0
    self._queue: 'queue.Queue[Optional[bytes]]' = queue.Queue(MAX_QUEUED_RECORDS)
    self._closed = False
    self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                    name='request-log-writer')
    self._thread.start()

  def collect(self, record: bytes) -> None:
    if self._closed:
      return
    try:
      self._queue.put_nowait(record)
    except queue.Full:
      self.dropped += 1
      if self.dropped == 1 or self.dropped % 1000 == 0:
        log.warning('request log %s: writer falls behind, %d records dropped',
                    self.path, self.dropped)

  def close(self) -> None:
    """Writes what is queued, closes the file; later records are ignored."""
    if self._closed:
      return
    self._closed = True
    self._queue.put(None)
    self._thread.join(timeout=60)

  def _write_loop(self) -> None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    writer = None
    failed = False
    done = False
    while not done:
      batch = [self._queue.get()]
      while True:  # Whatever else is queued goes out with the same flush.
        try:
          batch.append(self._queue.get_nowait())
        except queue.Empty:
          break
      if None in batch:
        done = True
        batch = batch[:batch.index(None)]
      if not batch or failed:
        self.dropped += len(batch)
        continue
      try:
        if writer is None:
          writer = tf.io.TFRecordWriter(self.path)
          log.info('request log: writing %s', self.path)
        for record in batch:
          writer.write(record)
        writer.flush()
        self.records += len(batch)
      except Exception as e:  # pylint: disable=broad-except
        failed = True
        self.dropped += len(batch)
        log.error('request log %s cannot be written, logging stops: %s',
                  self.path, e)
    if writer is not None:
      writer.close()
    if self.dropped:
      log.warning('request log %s: %d records written, %d dropped', self.path,
                  self.records, self.dropped)


_COLLECTOR_FACTORIES: Dict[str, Callable[[str], TFRecordCollector]] = {
    TFRECORD_COLLECTOR: TFRecordCollector}


class RequestLogger:
  """One LoggingConfig: samples requests and writes them to its collector
  (core/request_logger.cc)."""

  def __init__(self, config: LoggingConfig, saved_model_tags: Sequence[str]):
    check_config(config, 'logging_config')
    self.config = config
    self.sampling_rate = config.sampling_config.sampling_rate
    self._tags = list(saved_model_tags)
    self._random = random.Random()  # seeded from os.urandom, as random_device
    collector = config.log_collector_config
    self.collector = _COLLECTOR_FACTORIES[collector.type](
        collector.filename_prefix)

  def sample(self) -> bool:
    """UniformSampler::Sample: true with probability sampling_rate."""
    return self._random.random() < self.sampling_rate

  def write(self, kind: str, request: message_lib.Message,
            response: message_lib.Message, model_spec: model_pb2.ModelSpec
            ) -> None:
    record = prediction_log_pb2.PredictionLog()
    metadata = record.log_metadata
    metadata.model_spec.CopyFrom(model_spec)
    metadata.sampling_config.CopyFrom(self.config.sampling_config)
    metadata.saved_model_tags.extend(self._tags)
    metadata.timestamp_secs = int(time.time())
    entry = getattr(record, kind)
    entry.request.CopyFrom(request)
    entry.response.CopyFrom(response)
    self.collector.collect(record.SerializeToString())

  def close(self) -> None:
    self.collector.close()


# What a request hands over when it is sampled: (request, response, ModelSpec).
LogEntry = Tuple[message_lib.Message, message_lib.Message, model_pb2.ModelSpec]


class ServerRequestLogger:
  """The request loggers of every model (core/server_request_logger.cc)."""

  def __init__(self, saved_model_tags: Sequence[str]):
    self._tags = list(saved_model_tags)
    self._by_model: Dict[str, List[RequestLogger]] = {}  # replaced, not edited
    self._by_config: Dict[bytes, RequestLogger] = {}
    self._update_lock = threading.Lock()

  def update(self, configs: Mapping[str, Optional[LoggingConfig]]) -> None:
    """Logs the models of `configs` (name -> LoggingConfig or None) from now on.

    Unchanged configs keep their logger and file; loggers no longer used are
    closed. Raises ValueError (and changes nothing) if a logger cannot be made.
    """
    with self._update_lock:
      by_config: Dict[bytes, RequestLogger] = {}
      by_model: Dict[str, List[RequestLogger]] = {}
      created = []
      try:
        for name, config in configs.items():
          if config is None:
            continue
          key = _config_key(config)
          logger = by_config.get(key) or self._by_config.get(key)
          if logger is None:
            logger = RequestLogger(config, self._tags)
            created.append(logger)
          by_config[key] = logger
          by_model[name] = [logger]
      except ValueError:
        for logger in created:
          logger.close()
        raise
      old = self._by_config
      self._by_model, self._by_config = by_model, by_config
      for key, logger in old.items():
        if key not in by_config:
          logger.close()

  @property
  def active(self) -> bool:
    return bool(self._by_model)

  def log(self, model_name: str, kind: str,
          entry: Callable[[], LogEntry]) -> None:
    """Logs a successful call of `model_name` if sampled; `entry` makes the
    (request, response, ModelSpec) to log, and is only called then."""
    loggers = self._by_model.get(model_name)
    if not loggers:
      return
    sampled = [logger for logger in loggers if logger.sample()]
    if not sampled:
      return
    try:
      request, response, spec = entry()
      for logger in sampled:
        logger.write(kind, request, response, spec)
    except Exception:  # pylint: disable=broad-except
      # Logging must never fail the request it logs.
      log.exception('logging a %s request of model %r failed', kind, model_name)

  def close(self) -> None:
    """Writes what is queued and closes every file."""
    self.update({})

  def destinations(self) -> List[Tuple[str, str, float]]:
    """(model name, log file, sampling rate) of every logged model; the file
    is created with its first record."""
    return [(name, logger.collector.path, logger.sampling_rate)
            for name, loggers in sorted(self._by_model.items())
            for logger in loggers]
