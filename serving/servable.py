"""One loaded model version: its signatures, input checks and model calls.

A `Servable` is what TF Serving calls a servable: one version directory
(`<base_path>/<version>/`, a SavedModel) loaded with `tf.saved_model.load`. Each
signature becomes a `Signature` that checks request tensors against the
signature's TensorSpecs (so a wrong name, dtype or shape is an INVALID_ARGUMENT that
says what was expected, never a TensorFlow stack trace) and queues model calls on a
batch scheduler.

The SignatureDefs come from saved_model.pb itself, not from the loaded functions,
so GetModelMetadata reports exactly what TF Serving would for the same directory.
"""

from typing import Dict, Iterable, Mapping, Optional

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from serving import batching
from serving import errors
from serving import tensors

DEFAULT_SIGNATURE = 'serving_default'
SERVE_TAG = 'serve'


def read_signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
  """The SignatureDefs of the `serve` MetaGraph of the SavedModel at `path`."""
  saved_model = saved_model_pb2.SavedModel()
  binary = f'{path}/saved_model.pb'
  if tf.io.gfile.exists(binary):
    with tf.io.gfile.GFile(binary, 'rb') as f:
      saved_model.ParseFromString(f.read())
  else:
    with tf.io.gfile.GFile(f'{path}/saved_model.pbtxt') as f:
      text_format.Parse(f.read(), saved_model)
  for meta_graph in saved_model.meta_graphs:
    if SERVE_TAG in meta_graph.meta_info_def.tags:
      return dict(meta_graph.signature_def)
  raise ValueError(f'{path}: no MetaGraph tagged {SERVE_TAG!r}')


def is_saved_model_dir(path: str) -> bool:
  """Local folders and any file system TensorFlow reads (gs://, ...)."""
  return any(tf.io.gfile.exists(f'{path}/{name}')
             for name in ('saved_model.pb', 'saved_model.pbtxt'))


def _shape_text(shape: Iterable[Optional[int]]) -> str:
  return '[' + ','.join('-1' if d is None else str(d) for d in shape) + ']'


class Signature:
  """One signature of a loaded version: checks inputs, runs and batches calls."""

  def __init__(self, name: str, function, method_name: str,
               batching_params: Optional[batching.BatchingParameters],
               scheduler_name: str):
    self.name = name
    self.method_name = method_name
    self._function = function
    self.inputs: Dict[str, tf.TensorSpec] = dict(
        function.structured_input_signature[1])
    self.outputs: Dict[str, tf.TensorSpec] = dict(function.structured_outputs)
    self._input_dtypes = {
        key: (np.dtype(object) if spec.dtype == tf.string
              else np.dtype(spec.dtype.as_numpy_dtype))
        for key, spec in self.inputs.items()}
    specs = list(self.inputs.values()) + list(self.outputs.values())
    # Requests can be merged only if every tensor has a free leading batch axis.
    self.batchable = bool(self.inputs) and all(
        spec.shape.rank and spec.shape[0] is None for spec in specs)
    if batching_params and self.batchable:
      self._scheduler = batching.BatchScheduler(
          self.run, batching_params, scheduler_name)
    else:
      self._scheduler = batching.DirectScheduler(self.run, name=scheduler_name)

  @property
  def batch_sizes(self):
    return self._scheduler.batch_sizes

  def input_datatype(self, key: str) -> int:
    return self.inputs[key].dtype.as_datatype_enum

  def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> int:
    """Checks names, dtypes and shapes; returns the batch size (rows)."""
    if set(inputs) != set(self.inputs):
      sent, expected = sorted(inputs), sorted(self.inputs)
      extra = sorted(set(sent) - set(expected))
      missing = sorted(set(expected) - set(sent))
      # TF Serving's own wording (predict_util.cc), which names both sets.
      raise errors.invalid_argument(
          f'input size does not match signature: {len(sent)}!={len(expected)} '
          f'len({{{",".join(sent)}}}) != len({{{",".join(expected)}}}). '
          f'Sent extra: {{{",".join(extra)}}}. '
          f'Missing but required: {{{",".join(missing)}}}.')
    rows = None
    for key, value in inputs.items():
      spec = self.inputs[key]
      expected_dtype = self._input_dtypes[key]
      if value.dtype != expected_dtype and not (
          expected_dtype == object and value.dtype.kind in ('S', 'U', 'O')):
        raise errors.invalid_argument(
            f'input {key!r} of signature {self.name!r} has dtype '
            f'{tensors.dtype_name(tensors.datatype(value.dtype))}, expected '
            f'{tensors.dtype_name(spec.dtype.as_datatype_enum)} with shape '
            f'{_shape_text(spec.shape)}')
      if not spec.shape.is_compatible_with(value.shape):
        raise errors.invalid_argument(
            f'input {key!r} of signature {self.name!r} has shape '
            f'{_shape_text(value.shape)}, expected {_shape_text(spec.shape)} '
            f'({tensors.dtype_name(spec.dtype.as_datatype_enum)})')
      if self.batchable:
        if rows is not None and value.shape[0] != rows:
          raise errors.invalid_argument(
              'all inputs must have the same size in dimension 0 (the batch); '
              f'got {rows} and {value.shape[0]} ({key!r})')
        rows = value.shape[0]
    return rows or 1

  def run(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Calls the model now, in this thread."""
    feeds = {}
    for key, value in inputs.items():
      if value.dtype.kind == 'U':
        value = np.char.encode(value, 'utf-8')
      feeds[key] = tf.constant(value, dtype=self.inputs[key].dtype)
    result = self._function(**feeds)
    return {key: tensor.numpy() for key, tensor in result.items()}

  def submit(self, inputs: Mapping[str, np.ndarray],
             output_filter: Iterable[str] = ()) -> Dict[str, np.ndarray]:
    """Checks `inputs`, runs them (batched with other requests if batching is
    on) and returns the outputs, all or those named in `output_filter`."""
    output_filter = list(output_filter)
    for alias in output_filter:
      if alias not in self.outputs:
        raise errors.invalid_argument(
            f'output tensor alias not found in signature: {alias} Outputs '
            f'expected to be in the set {{{",".join(sorted(self.outputs))}}}.')
    if len(set(output_filter)) != len(output_filter):
      raise errors.invalid_argument('duplicate output tensor alias in filter')
    rows = self.check_inputs(inputs)
    outputs = self._scheduler.submit(dict(inputs), rows)
    if output_filter:
      outputs = {key: outputs[key] for key in output_filter}
    return outputs

  def close(self) -> None:
    self._scheduler.close()


class Servable:
  """One version of one model, loaded and ready to answer."""

  def __init__(self, name: str, version: int, path: str, loaded,
               signature_defs: Dict[str, meta_graph_pb2.SignatureDef],
               batching_params: Optional[batching.BatchingParameters]):
    self.name = name
    self.version = version
    self.path = path
    self.signature_defs = signature_defs
    self._loaded = loaded  # Keeps the variables the functions use alive.
    self.signatures: Dict[str, Signature] = {}
    for key, function in loaded.signatures.items():
      method = signature_defs[key].method_name if key in signature_defs else ''
      self.signatures[key] = Signature(
          key, function, method, batching_params, f'{name}-{version}-{key}')

  @classmethod
  def load(cls, name: str, version: int, path: str,
           batching_params: Optional[batching.BatchingParameters]) -> 'Servable':
    signature_defs = read_signature_defs(path)
    loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
    return cls(name, version, path, loaded, signature_defs, batching_params)

  def signature(self, name: str) -> Optional[Signature]:
    return self.signatures.get(name or DEFAULT_SIGNATURE)

  def batch_sizes(self) -> Dict[str, Dict[int, int]]:
    return {key: dict(sig.batch_sizes) for key, sig in self.signatures.items()}

  def close(self) -> None:
    for signature in self.signatures.values():
      signature.close()

  def __repr__(self):
    return f'Servable({self.name!r}, version={self.version})'
