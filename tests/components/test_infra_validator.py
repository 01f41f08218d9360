"""The local InfraValidator: `python -m serving` started on the candidate, every
signature queried through the official stubs and compared with the model itself.

The models are small stand-ins with the pushed model's signatures
(tests/testutil/stand_in_models.py); the broken ones break the way real exports
do: a signature whose graph fails on real inputs, one that answers something else
than the model does in-process, and a version directory that does not load.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components import atomic_pusher
from components import infra_validator
from models import features
from models import serving_contract as contract
from tests.testutil import stand_in_models
from tests.testutil.mnist_files import images_of

# Every test here starts model-server or mnist-tfx processes.
pytestmark = pytest.mark.processes

NUM_EXAMPLES = 4
# Called in name order.
SIGNATURES = sorted([contract.DEFAULT_SIGNATURE, contract.IMAGES_SIGNATURE,
                     contract.CLASSIFY_SIGNATURE])


class _BrokenPredictImages(stand_in_models.LinearDigits):
  """predict_images takes the log of a negative number and checks it: the model
  loads, its graph fails for every real input."""

  @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32)])
  def predict_images(self, images):
    return {'scores': tf.debugging.check_numerics(
        tf.math.log(-1.0 - images), 'predict_images is broken')}


class _RandomPredictImages(stand_in_models.LinearDigits):
  """predict_images answers, but not what the model answers another time."""

  @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32)])
  def predict_images(self, images):
    return {'scores': tf.random.uniform([tf.shape(images)[0], 10])}


@pytest.fixture(scope='module')
def records():
  images = images_of(NUM_EXAMPLES, seed=7).reshape(NUM_EXAMPLES, -1)
  return [features.example(row.tolist(), i).SerializeToString()
          for i, row in enumerate(images)]


@pytest.fixture(scope='module')
def good_model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('good') / 'model')
  stand_in_models.save_model(path, version=1)
  return path


def _validate(model_dir, records, tmp_path, **kwargs):
  kwargs.setdefault('max_loading_time_seconds', 120)
  kwargs.setdefault('num_tries', 1)
  return infra_validator.validate(model_dir, records, 'mnist',
                                  str(tmp_path / 'server.log'), **kwargs)


def test_a_model_that_answers_as_it_does_in_process_is_blessed(
    good_model, records, tmp_path, monkeypatch):
  servers = []
  make = infra_validator._server  # pylint: disable=protected-access

  def recording(*args):
    servers.append(make(*args))
    return servers[-1]

  monkeypatch.setattr(infra_validator, '_server', recording)
  result = _validate(good_model, records, tmp_path)
  pids = [server.pid for server in servers]
  assert result.blessed, result.reason
  assert result.signatures == SIGNATURES
  assert result.requests == len(SIGNATURES) * NUM_EXAMPLES
  # A separate process on loopback, and it is gone afterwards.
  assert len(pids) == 1 and pids[0] != os.getpid()
  with pytest.raises(ProcessLookupError):
    os.kill(pids[0], 0)
  log = (tmp_path / 'server.log').read_text()
  assert 'gRPC API at 127.0.0.1:' in log and 'server stopped' in log


def test_only_the_named_signatures_are_called(good_model, records, tmp_path):
  result = _validate(good_model, records[:1], tmp_path,
                     signature_names=['classify'])
  assert result.blessed, result.reason
  assert (result.signatures, result.requests) == (['classify'], 1)
  result = _validate(good_model, records[:1], tmp_path,
                     signature_names=['no_such_signature'])
  assert not result.blessed
  assert "no signature 'no_such_signature'" in result.reason


@pytest.mark.parametrize('module, reasons', [
    # A signature that fails on real inputs.
    (lambda: _BrokenPredictImages(1),
     ["signature 'predict_images' (Predict) failed in the model server",
      'predict_images is broken']),
    # Answers that differ from the model called in-process.
    (lambda: _RandomPredictImages(1),
     ["signature 'predict_images' (Predict) answered differently",
      "output 'scores' differs"]),
])
def test_a_model_that_loads_but_does_not_answer_right_is_not_blessed(
    records, tmp_path, module, reasons):
  model = stand_in_models.save_module(module(), str(tmp_path / 'model'))
  result = _validate(model, records, tmp_path)
  assert not result.blessed
  for reason in reasons:
    assert reason in result.reason


def test_a_model_without_its_variables_does_not_load_and_is_not_blessed(
    good_model, records, tmp_path):
  model = str(tmp_path / 'model')
  shutil.copytree(good_model, model)
  shutil.rmtree(os.path.join(model, 'variables'))
  result = _validate(model, records, tmp_path)
  assert not result.blessed
  assert result.reason.startswith('the model server could not load the model:')


def test_a_directory_that_is_no_saved_model_is_not_blessed(records, tmp_path):
  model = tmp_path / 'model'
  model.mkdir()
  (model / 'saved_model.pb').write_bytes(b'not a SavedModel')
  result = _validate(str(model), records, tmp_path)
  assert not result.blessed
  assert result.reason.startswith('the model server could not load the model:')


def test_a_server_that_dies_at_start_is_retried_then_not_blessed(
    good_model, records, tmp_path, monkeypatch):
  starts = []
  make = infra_validator._server  # pylint: disable=protected-access

  def dying(*args):
    server = make(*args)
    starts.append(server.grpc_port)
    server.command = [server.command[0], '-c', 'import sys; print("boom"); '
                      'sys.exit(3)']
    return server

  monkeypatch.setattr(infra_validator, '_server', dying)
  result = _validate(good_model, records, tmp_path, num_tries=2)
  assert len(starts) == 2
  assert not result.blessed
  assert 'the model server exited (status 3)' in result.reason
  assert 'boom' in result.reason


# --- the component: TFX artifacts in, TFX's InfraBlessing out ---------------------


def _examples_artifact(tmp_path, records):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  examples.split_names = json.dumps(['train', 'eval'])
  for split in ('train', 'eval'):
    os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
  path = os.path.join(examples.uri, 'Split-eval', 'data_tfrecord-00000.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for record in records:
      writer.write(record)
  return examples


def _model_artifact(tmp_path, saved_model_dir):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / 'model_artifact')
  shutil.copytree(saved_model_dir, os.path.join(model.uri, 'Format-Serving'))
  return model


def _run_executor(tmp_path, model, examples):
  from tfx.proto import infra_validator_pb2  # pylint: disable=g-import-not-at-top
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  blessing = standard_artifacts.InfraBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  os.makedirs(blessing.uri)
  exec_properties = {
      'serving_spec': proto_utils.proto_to_json(
          infra_validator_pb2.ServingSpec(model_name='mnist')),
      'validation_spec': proto_utils.proto_to_json(
          infra_validator_pb2.ValidationSpec(max_loading_time_seconds=120,
                                             num_tries=1)),
      'request_spec': proto_utils.proto_to_json(infra_validator_pb2.RequestSpec(
          tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(),
          split_name='eval', num_examples=2)),
  }
  infra_validator.Executor().Do(
      {'model': [model], 'examples': [examples]}, {'blessing': [blessing]},
      exec_properties)
  return blessing


def _push(tmp_path, model, infra_blessing):
  """The project's Pusher executor with a blessing Evaluator and this infra
  blessing; returns its pushed_model artifact and the base path."""
  from tfx.utils import proto_utils  # pylint: disable=g-import-not-at-top
  from tfx.proto import pusher_pb2  # pylint: disable=g-import-not-at-top
  model_blessing = standard_artifacts.ModelBlessing()
  model_blessing.uri = str(tmp_path / 'model_blessing')
  model_blessing.set_int_custom_property('blessed', 1)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / 'pushed')
  base = str(tmp_path / 'serving' / 'mnist')
  atomic_pusher.Executor().Do(
      {'model': [model], 'model_blessing': [model_blessing],
       'infra_blessing': [infra_blessing]},
      {'pushed_model': [pushed]},
      {'push_destination': proto_utils.proto_to_json(pusher_pb2.PushDestination(
          filesystem=pusher_pb2.PushDestination.Filesystem(
              base_directory=base)))})
  return pushed, base


def test_component_blesses_a_good_model_and_the_pusher_pushes_it(
    good_model, records, tmp_path):
  model = _model_artifact(tmp_path, good_model)
  blessing = _run_executor(tmp_path, model, _examples_artifact(tmp_path, records))
  assert sorted(os.listdir(blessing.uri)) == ['INFRA_BLESSED',
                                              'model_server.log']
  assert blessing.get_int_custom_property('blessed') == 1
  assert blessing.get_string_custom_property('signatures') == ','.join(
      SIGNATURES)
  assert blessing.get_int_custom_property('requests') == len(SIGNATURES) * 2
  pushed, base = _push(tmp_path, model, blessing)
  assert pushed.get_int_custom_property('pushed') == 1
  assert atomic_pusher.versions(base) == [1]


def test_component_does_not_bless_a_broken_model_and_the_pusher_does_not_push(
    records, tmp_path):
  broken = stand_in_models.save_module(_BrokenPredictImages(1),
                                       str(tmp_path / 'saved_model'))
  model = _model_artifact(tmp_path, broken)
  blessing = _run_executor(tmp_path, model, _examples_artifact(tmp_path, records))
  assert 'INFRA_NOT_BLESSED' in os.listdir(blessing.uri)
  assert blessing.get_int_custom_property('blessed') == 0
  reason = blessing.get_string_custom_property('reason')
  assert "signature 'predict_images'" in reason
  assert reason in (tmp_path / 'blessing' / 'INFRA_NOT_BLESSED').read_text()
  pushed, base = _push(tmp_path, model, blessing)
  assert pushed.get_int_custom_property('pushed') == 0
  assert atomic_pusher.versions(base) == []


def test_read_records_takes_the_named_split(records, tmp_path):
  examples = _examples_artifact(tmp_path, records)
  assert infra_validator.read_records(examples, 'eval', 2) == records[:2]
  assert infra_validator.read_records(examples, 'eval', 100) == records
  with pytest.raises(ValueError, match="no split 'test'"):
    infra_validator.read_records(examples, 'test', 1)


def test_float_inputs_get_the_pixels_and_string_inputs_the_examples(records):
  from tensorflow.core.protobuf import meta_graph_pb2  # pylint: disable=g-import-not-at-top
  example = tf.train.Example.FromString(records[0])
  pixels = np.asarray(example.features.feature['image'].int64_list.value)
  floats = meta_graph_pb2.TensorInfo(
      dtype=tf.float32.as_datatype_enum,
      tensor_shape=tf.TensorShape([None, 784]).as_proto())
  value = infra_validator._input_value('s', 'images', floats, records[0])  # pylint: disable=protected-access
  assert value.dtype == np.float32 and value.shape == (1, 784)
  np.testing.assert_allclose(value, pixels[np.newaxis, :] / 255.0)
  strings = meta_graph_pb2.TensorInfo(
      dtype=tf.string.as_datatype_enum,
      tensor_shape=tf.TensorShape([None]).as_proto())
  assert infra_validator._input_value('s', 'examples', strings, records[0]  # pylint: disable=protected-access
                                      ).tolist() == [records[0]]
  ints = meta_graph_pb2.TensorInfo(
      dtype=tf.int32.as_datatype_enum,
      tensor_shape=tf.TensorShape([None, 3]).as_proto())
  with pytest.raises(infra_validator._NotBlessed,  # pylint: disable=protected-access
                     match="no request can be built for input 'x'"):
    infra_validator._input_value('s', 'x', ints, records[0])  # pylint: disable=protected-access
