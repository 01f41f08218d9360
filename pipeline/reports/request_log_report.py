"""Reading request logs back: what `mnist-tfx requests` prints and draws.

The server writes sampled requests as TFRecord files of tensorflow.serving.
PredictionLog protos (serving/core/request_logging.py, TF Serving's logging_config).
This module finds those files from a filename prefix, reads them, decodes the
digits from the logged requests and the predicted digits from the responses:

- Predict with float images (`predict_images`: `images` float [N, 784] in [0, 1]);
  the digit is the argmax of the response's [N, 10] scores, or its int `classes`.
- Predict with serialized tf.Examples (`serving_default`: `examples`), Classify,
  Regress and MultiInference: the examples' `image` feature (784 int64 in
  0-255, models/features.py); Classify's digit is its best-scoring label.

A file the server is still writing may end in an incomplete record; that record
is skipped with a note. Anything else that does not read is a RequestLogError, whose
message names the file and what is wrong with it (`mnist-tfx requests` prints it as
one line).
"""

import collections
import dataclasses
import os
import struct
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import google_crc32c
import numpy as np

from models import features
from models import serving_contract as contract
from serving.core import request_logging

NUM_CLASSES = features.NUM_CLASSES
DIGITS_PICTURE = 'request_log_digits.png'
DISTRIBUTION_PICTURE = 'request_log_distribution.png'

# (kind, model, version, signature), kind being predict/classify/regress/...
Key = Tuple[str, str, int, str]


class RequestLogError(Exception):
  """Request logs that cannot be found or read; the message says which and why."""


# --- finding and reading the files -------------------------------------------------
def find_files(specs: Sequence[str]) -> List[str]:
  """The log files each spec names: a file, a folder (its *.tfrecord files), a
  glob pattern, or a filename_prefix (<prefix>*.tfrecord). A spec naming none
  is a RequestLogError."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  found: List[str] = []
  for spec in specs:
    try:
      if tf.io.gfile.isdir(spec):
        matches = tf.io.gfile.glob(
            os.path.join(spec, '*' + request_logging.FILE_SUFFIX))
        looked = f'*{request_logging.FILE_SUFFIX} in the folder {spec}'
      elif tf.io.gfile.exists(spec):
        matches = [spec]
        looked = spec
      elif any(c in spec for c in '*?['):
        matches = tf.io.gfile.glob(spec)
        looked = spec
      else:
        matches = tf.io.gfile.glob(spec + '*' + request_logging.FILE_SUFFIX)
        looked = f'{spec}*{request_logging.FILE_SUFFIX}'
    except tf.errors.OpError as e:
      raise RequestLogError(f'{spec}: cannot list request logs: {e.message}') from None
    matches = sorted(m for m in matches if not tf.io.gfile.isdir(m))
    if not matches:
      raise RequestLogError(f'no request log files match {spec} (looked for {looked}); '
                      'give the logging_config filename_prefix, a folder or files')
    found.extend(m for m in matches if m not in found)
  return found


# A TFRecord is a header (length, 8 bytes; its masked CRC-32C, 4), the data and
# the data's masked CRC-32C (4): tensorflow/core/lib/io/record_writer.h.
_HEADER_BYTES = 12
_FOOTER_BYTES = 4


def _masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h: Mask)."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _incomplete_tail(path: str, offset: int) -> bool:
  """Whether the bytes from `offset` on are the start of one record that is not
  written completely yet (rather than data that is not a TFRecord at all)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  remaining = tf.io.gfile.stat(path).length - offset
  with tf.io.gfile.GFile(path, 'rb') as f:
    f.seek(offset)
    header = f.read(_HEADER_BYTES)
  if len(header) < _HEADER_BYTES:
    return offset > 0
  length, length_crc = struct.unpack('<QI', header)
  return (_masked_crc32c(header[:8]) == length_crc and
          remaining < _HEADER_BYTES + length + _FOOTER_BYTES)


def read_records(path: str, notes: List[str]) -> Iterator[bytes]:
  """The serialized records of one TFRecord file; an incomplete last record
  (a file being written) is skipped with a note."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  # tf.data's reader checks the CRCs; where each record ends follows from its
  # length, for telling a record being written from a corrupt file.
  offset = count = 0
  try:
    for record in tf.data.TFRecordDataset(path):
      data = record.numpy()
      yield data
      offset += _HEADER_BYTES + len(data) + _FOOTER_BYTES
      count += 1
  except tf.errors.DataLossError:
    if _incomplete_tail(path, offset):
      notes.append(f'{path}: the last record is incomplete (the server is '
                   f'still writing it?); read the {count} before it')
      return
    raise RequestLogError(f'{path}: not a readable TFRecord file (corrupt after '
                    f'{count} records)') from None
  except tf.errors.OpError as e:
    raise RequestLogError(f'{path}: cannot read: {e.message}') from None


def read_logs(paths: Sequence[str], notes: List[str]) -> Iterator[tuple]:
  """(path, PredictionLog) of every record of `paths`."""
  from google.protobuf import message as message_lib  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  for path in paths:
    for record in read_records(path, notes):
      entry = prediction_log_pb2.PredictionLog()
      try:
        entry.ParseFromString(record)
      except message_lib.DecodeError:
        raise RequestLogError(f'{path}: holds a record that is not a '
                        'tensorflow.serving.PredictionLog') from None
      if entry.WhichOneof('log_type') is None:
        raise RequestLogError(f'{path}: holds a record that is not a '
                        'tensorflow.serving.PredictionLog (no request in it)')
      yield path, entry


# --- decoding digits ---------------------------------------------------------------
def _example_images(examples, context=None) -> Optional[np.ndarray]:
  """uint8 [N, 784] from tf.Examples' `image` feature, or None."""
  rows = []
  for example in examples:
    feature = example.features.feature.get(features.IMAGE_KEY)
    if feature is None and context is not None:
      feature = context.features.feature.get(features.IMAGE_KEY)
    if feature is None:
      return None
    values = (feature.int64_list.value or feature.float_list.value)
    if len(values) != features.IMAGE_PIXELS:
      return None
    rows.append(np.clip(np.asarray(values), 0, 255).astype(np.uint8))
  return np.stack(rows) if rows else None


def _input_images(model_input) -> Optional[np.ndarray]:
  """The images of an Input (Classify, Regress, MultiInference requests)."""
  kind = model_input.WhichOneof('kind')
  if kind == 'example_list':
    return _example_images(model_input.example_list.examples)
  if kind == 'example_list_with_context':
    with_context = model_input.example_list_with_context
    return _example_images(with_context.examples, with_context.context)
  return None


def _tensor_images(array: np.ndarray) -> Optional[np.ndarray]:
  """uint8 [N, 784] from a Predict input: float pixels or serialized examples."""
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  if array.dtype == object:
    try:
      examples = [example_pb2.Example.FromString(v) for v in array.reshape(-1)]
    except Exception:  # pylint: disable=broad-except
      return None
    return _example_images(examples)
  if array.dtype.kind not in 'fiu' or not array.size or (
      array.size % features.IMAGE_PIXELS):
    return None
  values = array.reshape(-1, features.IMAGE_PIXELS).astype(np.float64)
  if array.dtype.kind == 'f' and values.max() <= 1.0:
    values = values * 255.0  # predict_images: [0, 1]
  return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _predict_digits(outputs: Dict[str, np.ndarray], rows: int
                    ) -> Optional[np.ndarray]:
  """Digits from Predict outputs: int `classes` [N], else the argmax of a float
  [N, 10] output (scores, probabilities)."""
  classes = outputs.get('classes')
  if classes is not None and classes.dtype.kind in 'iu' and classes.shape == (
      rows,):
    return classes.astype(np.int64)
  for key in sorted(outputs):
    value = outputs[key]
    if value.dtype.kind == 'f' and value.shape == (rows, NUM_CLASSES):
      return np.argmax(value, axis=1)
  return None


def _classification_digits(result) -> Optional[np.ndarray]:
  """The best-scoring label of each ClassificationResult entry, as a digit."""
  digits = []
  for classifications in result.classifications:
    if not classifications.classes:
      return None
    best = max(classifications.classes, key=lambda c: c.score)
    if not best.label.isdigit():
      return None
    digits.append(int(best.label))
  return np.asarray(digits, np.int64)


def decode(entry) -> Tuple[Key, Optional[np.ndarray], Optional[np.ndarray]]:
  """(key, images uint8 [N, 784] or None, predicted digits [N] or None)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  kind = entry.WhichOneof('log_type')
  log = getattr(entry, kind)
  spec = entry.log_metadata.model_spec
  signature = spec.signature_name or contract.DEFAULT_SIGNATURE
  key = (kind[:-len('_log')], spec.name, spec.version.value, signature)
  images = digits = None
  try:
    if kind == request_logging.PREDICT:
      for proto in log.request.inputs.values():
        images = _tensor_images(tf.make_ndarray(proto))
        if images is not None:
          break
      if images is not None:
        outputs = {k: tf.make_ndarray(v) for k, v in log.response.outputs.items()}
        digits = _predict_digits(outputs, len(images))
    elif kind in (request_logging.CLASSIFY, request_logging.REGRESS,
                  request_logging.MULTI_INFERENCE):
      if kind == request_logging.MULTI_INFERENCE:
        images = _input_images(log.request.input)
        for result in log.response.results:
          if result.HasField('classification_result'):
            digits = _classification_digits(result.classification_result)
            break
      else:
        images = _input_images(log.request.input)
        if kind == request_logging.CLASSIFY:
          digits = _classification_digits(log.response.result)
  except (ValueError, TypeError):  # A tensor that does not convert: not digits.
    images = digits = None
  if digits is not None and (images is None or len(digits) != len(images)):
    digits = None
  return key, images, digits


# --- the summary -------------------------------------------------------------------
@dataclasses.dataclass
class Summary:
  """What the logs hold: counts, the predicted digits and a sample of images."""

  files: Dict[str, int] = dataclasses.field(default_factory=dict)
  notes: List[str] = dataclasses.field(default_factory=list)
  requests: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  images: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  predicted: np.ndarray = dataclasses.field(
      default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
  images_seen: int = 0
  first_time: int = 0
  last_time: int = 0
  # A uniform sample of the logged images (reservoir): (pixels, digit or -1).
  sample_images: List[np.ndarray] = dataclasses.field(default_factory=list)
  sample_digits: List[int] = dataclasses.field(default_factory=list)

  @property
  def total_requests(self) -> int:
    return sum(self.requests.values())


def summarize(paths: Sequence[str], sample_size: int = 48,
              seed: int = 0) -> Summary:
  """Reads every record of `paths` once into a Summary."""
  rng = np.random.default_rng(seed)
  summary = Summary(files={path: 0 for path in paths})
  for path, entry in read_logs(paths, summary.notes):
    summary.files[path] += 1
    key, images, digits = decode(entry)
    summary.requests[key] += 1
    stamp = entry.log_metadata.timestamp_secs
    if stamp:
      summary.first_time = min(summary.first_time or stamp, stamp)
      summary.last_time = max(summary.last_time, stamp)
    if images is None:
      continue
    summary.images[key] += len(images)
    if digits is not None:
      summary.predicted += np.bincount(digits[(digits >= 0) & (
          digits < NUM_CLASSES)], minlength=NUM_CLASSES)
    for i, image in enumerate(images):
      seen = summary.images_seen + i
      digit = int(digits[i]) if digits is not None else -1
      if seen < sample_size:
        summary.sample_images.append(image)
        summary.sample_digits.append(digit)
      else:
        slot = rng.integers(0, seen + 1)
        if slot < sample_size:
          summary.sample_images[slot] = image
          summary.sample_digits[slot] = digit
    summary.images_seen += len(images)
  return summary


def _percent(count: int, total: int) -> str:
  return f'{100.0 * count / total:5.1f}%' if total else '     -'


def report_lines(summary: Summary,
                 train_counts: Optional[np.ndarray]) -> List[str]:
  """The printed report: files, requests by kind, the two digit distributions."""
  import datetime  # pylint: disable=g-import-not-at-top

  def when(stamp):
    return datetime.datetime.fromtimestamp(
        stamp, datetime.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')

  lines = [f'{len(summary.files)} request log file'
           f'{"s" if len(summary.files) != 1 else ""}, '
           f'{summary.total_requests} logged requests' + (
               f' ({when(summary.first_time)} to {when(summary.last_time)})'
               if summary.first_time else '')]
  lines.extend(f'  {path}: {count} records' for path, count in
               summary.files.items())
  lines.extend(summary.notes)
  if summary.requests:
    rows = [(kind, model, str(version or '-'), signature, str(count),
             str(summary.images.get((kind, model, version, signature), 0)))
            for (kind, model, version, signature), count in
            sorted(summary.requests.items())]
    header = ('api', 'model', 'version', 'signature', 'requests', 'images')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(6)]
    lines.append('requests by API and signature:')
    for row in [header] + rows:
      lines.append('  ' + '  '.join(
          cell.ljust(w) if i < 4 else cell.rjust(w)
          for i, (cell, w) in enumerate(zip(row, widths))))
  with_digit = int(summary.predicted.sum())
  lines.append(f'images seen: {summary.images_seen} ({with_digit} with a '
               'predicted digit)')
  train_total = int(train_counts.sum()) if train_counts is not None else 0
  lines.append('digit  predicted           training labels')
  for digit in range(NUM_CLASSES):
    count = int(summary.predicted[digit])
    train = (f'{int(train_counts[digit]):>8}  '
             f'{_percent(int(train_counts[digit]), train_total)}'
             if train_counts is not None else '       -')
    lines.append(f'{digit:>5}  {count:>8}  {_percent(count, with_digit)}  '
                 f'{train}')
  return lines


# --- pictures ----------------------------------------------------------------------
def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_sample(summary: Summary, output: str) -> None:
  """A grid of the sampled logged digits, each titled with its predicted digit."""
  plt = _plt()
  count = len(summary.sample_images)
  cols = min(12, max(count, 1))
  rows = max(1, -(-count // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05 + 0.4),
                           squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis('off')
    if i < count:
      ax.imshow(summary.sample_images[i].reshape(features.IMAGE_ROWS,
                                                 features.IMAGE_COLS),
                cmap='gray', vmin=0, vmax=255)
      digit = summary.sample_digits[i]
      ax.set_title(str(digit) if digit >= 0 else '?', fontsize=9)
  fig.suptitle(f'{count} of {summary.images_seen} logged digits (title: '
               'predicted digit)', fontsize=9)
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)


def plot_distribution(summary: Summary, train_counts: Optional[np.ndarray],
                      output: str) -> None:
  """Bars: the share of each predicted digit next to its share of the training
  labels."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(7, 3.5))
  digits = np.arange(NUM_CLASSES)
  predicted = summary.predicted / max(int(summary.predicted.sum()), 1)
  width = 0.4 if train_counts is not None else 0.8
  ax.bar(digits - (width / 2 if train_counts is not None else 0),
         100 * predicted, width,
         label=f'predicted ({int(summary.predicted.sum())} logged images)')
  if train_counts is not None:
    train = train_counts / max(int(train_counts.sum()), 1)
    ax.bar(digits + width / 2, 100 * train, width,
           label=f'training labels ({int(train_counts.sum())})')
  top = max([100 * predicted.max()] + (
      [100 * train.max()] if train_counts is not None else []))
  ax.set_ylim(0, max(top, 1) * 1.3)  # room for the legend
  ax.set_xticks(digits)
  ax.set_xlabel('digit')
  ax.set_ylabel('% of images')
  ax.set_title('Predicted digits of the logged requests')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)
