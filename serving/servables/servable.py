"""One loaded model version: its signatures, input checks and model calls.

A `Servable` is what TF Serving calls a servable: one version directory
(`<base_path>/<version>/`, a SavedModel). It is loaded the way TF Serving loads it
(tensorflow/cc/saved_model/loader.cc via servables/tensorflow/
saved_model_bundle_factory.cc): the MetaGraph tagged `serve` is imported into a
TensorFlow Session of its own, the variables are restored and the init op run.
Requests then run the graph by the tensor names their SignatureDef lists, as
TF Serving's `Session::Run` does (predict_util.cc, classifier.cc, regressor.cc,
multi_inference.cc). This holds for TF1 graphs (SavedModelBuilder, whose inputs
may be internal tensors rather than placeholders) and for TF2 / Keras SavedModels
alike, since every SavedModel carries such a MetaGraph.

Running the graph by tensor name, not through `tf.saved_model.load`'s functions,
is also what makes the server exactly as lenient as TF Serving about shapes:
TensorFlow's C++ runtime does not compare a fed tensor with the static shape of
the tensor it replaces, so TF Serving answers `[3]` fed to an input declared
`[-1,1]` (half_plus_two: y = 0.5 x + 2 elementwise) and so does this server. The
Python-side checks of `Session.run` and of concrete functions are never on the
path: the graph is run through Session callables (`Session::MakeCallable`). The
request's input NAMES must still match the signature (TF Serving's
VerifyRequestInputsSize), and a dtype that differs from the signature's is
refused up front, as TensorFlow would refuse it at run time.

Requests whose shapes fit the signature's declared shapes may be batched with
others (batching.py); any other request runs alone, as given. If such a request
fails inside TensorFlow, the error says which shape the signature declares.

Inputs a request leaves out are taken from the SignatureDef's `defaults`, as TF
Serving does (cc/saved_model/util.cc GetInputValues).

Serving the MetaGraph also means serving what TF Serving serves, failures
included: a Keras 3 model written with tf.saved_model.save loads, but its graph
reads variables the MetaGraph's restore op does not create, so Predict answers
FAILED_PRECONDITION "Could not find variable ..." in both servers
(tensorflow/serving#2226); Keras 3's Model.export, and Keras 2 (tf_keras), work.

The SignatureDefs reported by GetModelMetadata are the MetaGraph's own, so they
are exactly what TF Serving reports for the same directory.
"""

import logging
import threading
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from models import serving_contract as contract
from serving.core import errors
from serving.servables import batching
from serving.servables import tensors

log = logging.getLogger(__name__)


def is_saved_model_dir(path: str) -> bool:
  """Local folders and any file system TensorFlow reads (gs://, ...)."""
  return any(tf.io.gfile.exists(f'{path}/{name}')
             for name in ('saved_model.pb', 'saved_model.pbtxt'))


def shape_text(shape) -> str:
  """[-1,784] for a TensorShape/tuple, [] for a scalar, <unknown> for no rank."""
  shape = tf.TensorShape(shape)
  if shape.rank is None:
    return '<unknown>'
  return '[' + ','.join('-1' if d is None else str(d)
                        for d in shape.as_list()) + ']'


def _tensor_spec(info: meta_graph_pb2.TensorInfo) -> tf.TensorSpec:
  return tf.TensorSpec(tf.TensorShape(info.tensor_shape),
                       tf.dtypes.as_dtype(info.dtype))


class GraphRunner:
  """Runs one loaded MetaGraph by tensor names: TF Serving's Session::Run.

  Each distinct (feeds, fetches) pair becomes a Session callable once; calling
  one performs no Python-side shape check.
  """

  def __init__(self, session: tf.compat.v1.Session):
    self._session = session
    self._callables: Dict[Tuple[Tuple[str, ...], Tuple[str, ...]], object] = {}
    self._lock = threading.Lock()

  def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str],
          timeout_in_ms: int = 0) -> List[np.ndarray]:
    """The values of the tensors named in `fetches`, feeding `feeds` (tensor
    name -> value). `timeout_in_ms` > 0 is RunOptions.timeout_in_ms (an
    overrun is DEADLINE_EXCEEDED, as in TF Serving)."""
    names = tuple(feeds)
    values = [feeds[name] for name in names]
    fetches = tuple(fetches)
    if timeout_in_ms and timeout_in_ms > 0:
      return self._run_with_options(names, values, fetches, timeout_in_ms)
    key = (names, fetches)
    function = self._callables.get(key)
    if function is None:
      with self._lock:
        function = self._callables.get(key)
        if function is None:
          options = config_pb2.CallableOptions(feed=names, fetch=fetches)
          function = self._session._make_callable_from_options(options)  # pylint: disable=protected-access
          self._callables[key] = function
    return [np.asarray(value) for value in function(*values)]

  def _run_with_options(self, names, values, fetches, timeout_in_ms):
    # Session.run would check the static shapes in Python; this is the call
    # it makes after those checks (TF_SessionRun with RunOptions).
    from tensorflow.python.client import pywrap_tf_session  # pylint: disable=g-import-not-at-top
    graph = self._session.graph
    feed_dict = {graph.get_tensor_by_name(name)._as_tf_output(): value  # pylint: disable=protected-access
                 for name, value in zip(names, values)}
    fetch_list = [graph.get_tensor_by_name(name)._as_tf_output()  # pylint: disable=protected-access
                  for name in fetches]
    options = config_pb2.RunOptions(timeout_in_ms=timeout_in_ms)
    buffer = pywrap_tf_session.TF_NewBufferFromString(
        options.SerializeToString())
    try:
      results = self._session._call_tf_sessionrun(  # pylint: disable=protected-access
          buffer, feed_dict, fetch_list, [], None)
    finally:
      pywrap_tf_session.TF_DeleteBuffer(buffer)
    return [np.asarray(value) for value in results]


class Signature:
  """One signature of a loaded version: checks inputs, runs and batches calls."""

  def __init__(self, name: str, signature_def: meta_graph_pb2.SignatureDef,
               runner: GraphRunner,
               batching_params: Optional[batching.BatchingParameters],
               scheduler_name: str):
    self.name = name
    self.signature_def = signature_def
    self.method_name = signature_def.method_name
    self._runner = runner
    self.inputs: Dict[str, tf.TensorSpec] = {
        key: _tensor_spec(info) for key, info in signature_def.inputs.items()}
    self.outputs: Dict[str, tf.TensorSpec] = {
        key: _tensor_spec(info) for key, info in signature_def.outputs.items()}
    # Tensor names: what is fed and fetched (TensorInfo.name).
    self.input_names: Dict[str, str] = {
        key: info.name for key, info in signature_def.inputs.items()}
    self.output_names: Dict[str, str] = {
        key: info.name for key, info in signature_def.outputs.items()}
    # SignatureDef.defaults: values for inputs a request may leave out
    # (predict_util.cc VerifyRequestInputsSize, cc/saved_model/util.cc
    # GetInputValues). tf.saved_model.save writes them for Python defaults.
    self.defaults: Dict[str, np.ndarray] = {}
    for key, proto in signature_def.defaults.items():
      if key in self.inputs:
        try:
          self.defaults[key] = np.asarray(tf.make_ndarray(proto))
        except Exception:  # pylint: disable=broad-except
          log.warning('signature %r: default of input %r does not parse',
                      name, key)
    self._input_dtypes = {
        key: (np.dtype(object) if spec.dtype == tf.string
              else np.dtype(spec.dtype.as_numpy_dtype))
        for key, spec in self.inputs.items()}
    specs = list(self.inputs.values()) + list(self.outputs.values())
    # Requests can be merged only if every tensor has a free leading batch axis.
    self.batchable = bool(self.inputs) and all(
        spec.shape.rank and spec.shape[0] is None for spec in specs)
    self._scheduler: Optional[batching.BatchScheduler] = None
    if batching_params and self.batchable:
      self._scheduler = batching.BatchScheduler(
          self.run, batching_params, scheduler_name)

  def with_defaults(self, inputs: Mapping[str, np.ndarray]
                    ) -> Mapping[str, np.ndarray]:
    """`inputs` plus the signature's defaults for the inputs it leaves out,
    if it names no unknown input; otherwise `inputs` as they are."""
    missing = set(self.inputs) - set(inputs)
    if not missing or not missing <= set(self.defaults) or (
        not set(inputs) <= set(self.inputs)):
      return inputs
    filled = dict(inputs)
    for key in missing:
      filled[key] = self.defaults[key]
    return filled

  def check_inputs(self, inputs: Mapping[str, np.ndarray]) -> Optional[int]:
    """Checks input names and dtypes, as far as TF Serving effectively does.

    Returns the batch size (rows) when every input's shape fits the signature's
    declared shape (the request may then be merged with others), else None:
    the request runs alone with the shapes it has, as TF Serving runs it.
    """
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
    conforming = True
    for key, value in inputs.items():
      spec = self.inputs[key]
      expected_dtype = self._input_dtypes[key]
      if value.dtype != expected_dtype and not (
          expected_dtype == object and value.dtype.kind in ('S', 'U', 'O')):
        # TensorFlow would refuse the feed ("Type mismatch"); say it plainly.
        raise errors.invalid_argument(
            f'input {key!r} of signature {self.name!r} has dtype '
            f'{tensors.dtype_name(tensors.datatype(value.dtype))}, expected '
            f'{tensors.dtype_name(spec.dtype.as_datatype_enum)} with shape '
            f'{shape_text(spec.shape)}')
      if not spec.shape.is_compatible_with(value.shape):
        conforming = False
      elif value.ndim:
        if rows is not None and value.shape[0] != rows:
          conforming = False
        rows = value.shape[0]
    if not conforming:
      return None
    return rows if rows is not None else 1

  def _feed_value(self, key: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.kind == 'U':
      return np.char.encode(value, 'utf-8').astype(object)
    if value.dtype.kind == 'S':
      return value.astype(object)
    return value

  def run(self, inputs: Mapping[str, np.ndarray],
          output_keys: Optional[Sequence[str]] = None,
          timeout_in_ms: int = 0) -> Dict[str, np.ndarray]:
    """Runs the graph now, in this thread; the outputs named by `output_keys`
    (all by default), keyed by alias."""
    keys = list(self.outputs) if output_keys is None else list(output_keys)
    feeds = {self.input_names[key]: self._feed_value(key, value)
             for key, value in inputs.items()}
    # Two aliases may name one tensor: fetch it once.
    fetches = list(dict.fromkeys(self.output_names[key] for key in keys))
    values = dict(zip(fetches, self._runner.run(feeds, fetches, timeout_in_ms)))
    return {key: values[self.output_names[key]] for key in keys}

  def submit(self, inputs: Mapping[str, np.ndarray],
             output_filter: Iterable[str] = (),
             timeout_in_ms: int = 0) -> Dict[str, np.ndarray]:
    """Checks `inputs`, runs them (batched with other requests if batching is
    on and their shapes allow it) and returns the outputs, all or those named
    in `output_filter` (TF Serving's checks and texts, predict_util.cc).
    `timeout_in_ms` applies to calls that are not batched."""
    inputs = self.with_defaults(inputs)
    rows = self.check_inputs(inputs)
    output_filter = list(output_filter)
    seen = set()
    for alias in output_filter:
      if alias not in self.outputs:
        raise errors.invalid_argument(
            f'output tensor alias not found in signature: {alias} Outputs '
            f'expected to be in the set {{{",".join(sorted(self.outputs))}}}.')
      if alias in seen:
        raise errors.invalid_argument(f'duplicate output tensor alias: {alias}')
      seen.add(alias)
    if self._scheduler is not None and rows is not None:
      outputs = self._scheduler.submit(dict(inputs), rows)
      if output_filter:
        outputs = {key: outputs[key] for key in output_filter}
      return outputs
    try:
      return self.run(inputs, output_filter or None, timeout_in_ms)
    except Exception as e:  # pylint: disable=broad-except
      error = errors.from_exception(e)
      if rows is None and error.code != errors.Code.DEADLINE_EXCEEDED:
        error = errors.ServingError(
            error.code, f'{error.message} ({self._shape_hint(inputs)})')
      raise error from e

  def _shape_hint(self, inputs: Mapping[str, np.ndarray]) -> str:
    """Which inputs have shapes the signature does not declare."""
    parts = []
    for key in sorted(inputs):
      spec = self.inputs[key]
      if not spec.shape.is_compatible_with(inputs[key].shape):
        parts.append(
            f'input {key!r} of signature {self.name!r} has shape '
            f'{shape_text(inputs[key].shape)}, the signature declares '
            f'{shape_text(spec.shape)} '
            f'({tensors.dtype_name(spec.dtype.as_datatype_enum)})')
    return '; '.join(parts) or 'inputs of differing batch sizes'

  def close(self) -> None:
    if self._scheduler is not None:
      self._scheduler.close()


def _dense(signature_def: meta_graph_pb2.SignatureDef) -> bool:
  """Whether every TensorInfo names one tensor (not sparse/composite ones)."""
  infos = list(signature_def.inputs.values()) + list(
      signature_def.outputs.values())
  return all(info.WhichOneof('encoding') == 'name' for info in infos)


def load_session(path: str, tags: Sequence[str] = (contract.SERVE_TAG,)
                 ) -> Tuple[tf.compat.v1.Session, meta_graph_pb2.MetaGraphDef]:
  """Loads the MetaGraph tagged `tags` into a new Session, as TF Serving does.

  The session's ConfigProto is TensorFlow's context configuration, so
  tf.config.threading settings made before the load apply to it.
  """
  from tensorflow.python.util import deprecation  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  session = tf.compat.v1.Session(graph=graph)
  try:
    with graph.as_default(), deprecation.silence():
      meta_graph = tf.compat.v1.saved_model.load(session, list(tags), path)
  except BaseException:
    session.close()
    raise
  graph.finalize()  # Requests only run it; nothing may add nodes.
  return session, meta_graph


class Servable:
  """One version of one model, loaded and ready to answer."""

  def __init__(self, name: str, version: int, path: str,
               session: tf.compat.v1.Session,
               signature_defs: Mapping[str, meta_graph_pb2.SignatureDef],
               batching_params: Optional[batching.BatchingParameters]):
    self.name = name
    self.version = version
    self.path = path
    self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dict(
        signature_defs)
    # The session is closed when the last request holding this servable lets
    # go (Session.__del__), never under a running request.
    self._session = session
    self.runner = GraphRunner(session)
    self.signatures: Dict[str, Signature] = {}
    for key, signature_def in self.signature_defs.items():
      if key == contract.INIT_OP_SIGNATURE:
        continue
      if not _dense(signature_def):
        log.warning('%s: signature %r uses sparse or composite tensors, which '
                    'this server does not feed; it is not served', path, key)
        continue
      self.signatures[key] = Signature(
          key, signature_def, self.runner, batching_params,
          f'{name}-{version}-{key}')

  @classmethod
  def load(cls, name: str, version: int, path: str,
           batching_params: Optional[batching.BatchingParameters],
           tags: Sequence[str] = (contract.SERVE_TAG,)) -> 'Servable':
    session, meta_graph = load_session(path, tags)
    return cls(name, version, path, session, meta_graph.signature_def,
               batching_params)

  def signature(self, name: str) -> Optional[Signature]:
    return self.signatures.get(name or contract.DEFAULT_SIGNATURE)

  def run_tensors(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str],
                  timeout_in_ms: int = 0) -> Dict[str, np.ndarray]:
    """One Session::Run by tensor names (MultiInference): {fetch: value}."""
    fetches = list(dict.fromkeys(fetches))
    return dict(zip(fetches, self.runner.run(feeds, fetches, timeout_in_ms)))

  def close(self) -> None:
    for signature in self.signatures.values():
      signature.close()

  def __repr__(self):
    return f'Servable({self.name!r}, version={self.version})'
