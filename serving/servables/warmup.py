"""Warm-up: run a new version once per signature before it takes traffic.

The first call of a restored function pays for building TensorFlow's executor and
oneDNN kernels; a hot-swapped version must not make its first users pay that. Like
TF Serving, a version directory may carry recorded requests in
`assets.extra/tf_serving_warmup_requests` (a TFRecord file of PredictionLog protos);
those are replayed, and a failure there fails the load, as in TF Serving (the
pipeline's exporter writes them: models/trainer/warmup_requests.py). Without that
file, signatures whose inputs are all numeric are called with a small batch of
zeros; string inputs (serialized examples, whose features only the model knows)
are left cold, as TF Serving leaves every signature without the file. A synthetic
call that fails is only logged.
"""

import logging
import os
from typing import Dict

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from models import serving_contract as contract
from serving.servables import servable as servable_lib
from serving.servables import tensors

# TF Serving caps the replayed records the same way.
MAX_WARMUP_RECORDS = 1000
_SYNTHETIC_BATCH_SIZES = (1, 8)

log = logging.getLogger(__name__)


def warm_up(servable: servable_lib.Servable, iterations: int = 1) -> int:
  """Runs warm-up calls on `servable` (each warm-up record `iterations` times,
  TF Serving's --num_request_iterations_for_warmup); returns how many calls were
  made."""
  path = os.path.join(servable.path, contract.WARMUP_FILE)
  if tf.io.gfile.exists(path):
    return _replay(servable, path, iterations)
  calls = 0
  for signature in servable.signatures.values():
    if any(spec.dtype == tf.string for spec in signature.inputs.values()):
      continue
    for rows in _SYNTHETIC_BATCH_SIZES:
      try:
        signature.run(_synthetic_inputs(signature, rows))
        calls += 1
      except Exception as e:  # pylint: disable=broad-except
        log.info('synthetic warm-up of %s signature %r skipped: %s',
                 servable, signature.name, str(e).splitlines()[0] if str(e) else e)
        break
  return calls


def _synthetic_inputs(signature: servable_lib.Signature,
                      rows: int) -> Dict[str, np.ndarray]:
  """Zeros shaped like each input, `rows` on a free batch axis."""
  inputs = {}
  for key, spec in signature.inputs.items():
    shape = [rows if i == 0 and d is None else (d if d is not None else 1)
             for i, d in enumerate(spec.shape.as_list())]
    inputs[key] = np.zeros(shape, dtype=spec.dtype.as_numpy_dtype)
  return inputs


def _replay(servable: servable_lib.Servable, path: str, iterations: int) -> int:
  calls = 0
  for record in tf.data.TFRecordDataset(path).take(MAX_WARMUP_RECORDS):
    entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    kind = entry.WhichOneof('log_type')
    if kind == 'predict_log':
      request = entry.predict_log.request
      signature = servable.signature(request.model_spec.signature_name)
      inputs = tensors.to_ndarrays(request.inputs, max_elements=1 << 40)
    elif kind in ('classify_log', 'regress_log'):
      request = getattr(entry, kind).request
      signature = servable.signature(request.model_spec.signature_name)
      if signature is not None:
        inputs = {next(iter(signature.inputs)):
                  tensors.serialized_examples(request.input)}
    else:
      raise ValueError(f'{path}: warm-up record of type {kind} is not supported '
                       'by this server (predict_log, classify_log and '
                       'regress_log are)')
    if signature is None:
      raise ValueError(
          f'{path}: warm-up request names signature '
          f'{request.model_spec.signature_name!r}, which the model lacks')
    for _ in range(iterations):
      signature.run(inputs)
      calls += 1
  return calls
