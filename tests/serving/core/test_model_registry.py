"""The model registry (serving/core/model_registry.py): version policies, and
versions as a server serves them: hot swap of a pushed version, labels, bad
pushes.

The tests of served versions each own a base path on which they push versions as
the Pusher does (write beside, rename into place) while a server on loopback
watches it. New versions are byte copies of `template_version`, the stand-in
model, or a trained model's version directory if that fixture is changed to
return one; answers are told apart by the version in the response's model_spec.
"""

import json
import os
import shutil
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import serving_requests
from serving.core import model_registry
from serving.model_servers import options as options_lib
from serving.model_servers import server as server_lib
from tests.testutil import model_servers
from tests.testutil import stand_in_models

MODEL = 'mnist'
State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope='module')
def template_version(tmp_path_factory):
  """The version directory to copy from when pushing: a stand-in model with the
  pushed model's signatures, saved once for the module."""
  return stand_in_models.save_module(
      stand_in_models.LinearDigits(1),
      str(tmp_path_factory.mktemp('template') / 'model'))


@pytest.fixture
def push(tmp_path, template_version):
  """push(version) publishes a copy of the template as that version."""
  base_path = str(tmp_path / MODEL)

  def push_version(version):
    return stand_in_models.write_version(base_path, version,
                                         template=template_version)

  push_version.base_path = base_path
  return push_version


def images_request(**spec):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = 'predict_images'
  for key, value in spec.items():
    if key == 'version':
      request.model_spec.version.value = value
    else:
      setattr(request.model_spec, key, value)
  request.inputs['images'].CopyFrom(tf.make_tensor_proto(
      serving_requests.unit_floats(stand_in_models.random_images(1))))
  return request


def stubs(server):
  channel = grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}')
  return (channel, prediction_service_pb2_grpc.PredictionServiceStub(channel),
          model_service_pb2_grpc.ModelServiceStub(channel))


def statuses(model_stub, name=MODEL):
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = name
  response = model_stub.GetModelStatus(request, timeout=10)
  return {s.version: (s.state, s.status.error_message)
          for s in response.model_version_status}


def wait_for(condition, timeout=30.0, what='condition'):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if condition():
      return
    time.sleep(0.05)
  raise AssertionError(f'timed out waiting for {what}')


# --- version policies --------------------------------------------------------
def test_version_policies():
  on_disk = [3, 1, 10, 2]
  assert model_registry.VersionPolicy().select(on_disk) == {10}
  assert model_registry.VersionPolicy.parse('latest:2').select(on_disk) == {3, 10}
  assert model_registry.VersionPolicy.parse('all').select(on_disk) == {1, 2, 3, 10}
  assert model_registry.VersionPolicy.parse('specific:2,7').select(on_disk) == {2}
  for bad in ('newest', 'latest:0', 'specific', 'all:3'):
    with pytest.raises(ValueError):
      model_registry.VersionPolicy.parse(bad)


def test_only_complete_saved_models_are_served(tmp_path):
  """A version folder without saved_model.pb (being written) is left alone."""
  base_path = str(tmp_path / 'm')
  stand_in_models.write_version(base_path, 1)
  os.makedirs(os.path.join(base_path, '2', 'variables'))
  registry = server_lib.model_registry_for(
      [model_registry.ModelConfig('m', base_path)],
      options_lib.ServerOptions(file_system_poll_wait_seconds=0))
  registry.start()
  try:
    assert list(registry.servables('m')) == [1]
    assert [s.version for s in registry.version_statuses('m')] == [1]
  finally:
    registry.stop()



# --- versions a server serves ---------------------------------------------------
def test_hot_swap_under_load_loses_no_request(push):
  push(1)
  server = model_servers.start_server((MODEL, push.base_path),
                                      file_system_poll_wait_seconds=0.1)
  channel, stub, model_stub = stubs(server)
  request = images_request()
  stop = threading.Event()
  answers = [[] for _ in range(4)]  # Per client: versions, or errors.

  def client(log):
    while not stop.is_set():
      try:
        log.append(stub.Predict(request, timeout=10).model_spec.version.value)
      except grpc.RpcError as e:
        log.append(f'{e.code().name}: {e.details()}')

  threads = [threading.Thread(target=client, args=(log,)) for log in answers]
  try:
    for thread in threads:
      thread.start()
    wait_for(lambda: all(len(log) >= 20 for log in answers), what='traffic')
    push(2)
    wait_for(lambda: all(2 in log for log in answers), what='version 2')
    counts = [len(log) for log in answers]
    wait_for(lambda: all(len(log) >= n + 20 for log, n in zip(answers, counts)),
             what='traffic after the swap')
  finally:
    stop.set()
    for thread in threads:
      thread.join()
  try:
    errors = [a for log in answers for a in log if not isinstance(a, int)]
    assert not errors, errors[:5]
    for log in answers:
      # Each client saw 1 until the swap and 2 ever after.
      swap = log.index(2)
      assert set(log[:swap]) == {1} and set(log[swap:]) == {2}, log
    assert statuses(model_stub) == {1: (State.END, ''), 2: (State.AVAILABLE, '')}
    assert stub.Predict(request, timeout=10).model_spec.version.value == 2
    error = None
    try:
      stub.Predict(images_request(version=1), timeout=10)
    except grpc.RpcError as e:
      error = e
    assert error and error.code() == grpc.StatusCode.NOT_FOUND
  finally:
    channel.close()
    server.stop()


def test_latest_two_versions_labels_and_rest_paths(push):
  push(1)
  push(2)
  config = model_registry.ModelConfig(
      MODEL, push.base_path, model_registry.VersionPolicy('latest', 2),
      {'stable': 1, 'canary': 2})
  server = model_servers.start_server(config, file_system_poll_wait_seconds=0)
  channel, stub, model_stub = stubs(server)
  try:
    assert statuses(model_stub) == {1: (State.AVAILABLE, ''),
                                    2: (State.AVAILABLE, '')}
    answer = lambda **spec: stub.Predict(  # pylint: disable=g-long-lambda
        images_request(**spec), timeout=10).model_spec.version.value
    assert answer() == 2
    assert answer(version=1) == 1
    assert answer(version_label='stable') == 1
    assert answer(version_label='canary') == 2
    body = json.dumps({'signature_name': 'predict_images',
                       'instances': [[0.0] * 784]}).encode()
    for path in ('/v1/models/mnist/labels/stable:predict',
                 '/v1/models/mnist/versions/1:predict'):
      url = f'http://127.0.0.1:{server.rest_port}{path}'
      with urllib.request.urlopen(url, data=body, timeout=10) as response:
        assert len(json.loads(response.read())['predictions'][0]) == 10
  finally:
    channel.close()
    server.stop()


def test_specific_policy_serves_only_the_listed_versions(push):
  for version in (1, 2, 3):
    push(version)
  config = model_registry.ModelConfig(
      MODEL, push.base_path, model_registry.VersionPolicy('specific',
                                                          versions=(1, 3)))
  server = model_servers.start_server(config, file_system_poll_wait_seconds=0)
  try:
    assert sorted(server.registry.servables(MODEL)) == [1, 3]
  finally:
    server.stop()


def test_bad_push_keeps_the_served_version(push):
  push(1)
  server = model_servers.start_server(
      (MODEL, push.base_path), file_system_poll_wait_seconds=0.05,
      max_num_load_retries=1)
  channel, stub, model_stub = stubs(server)
  try:
    # Version 2: a saved_model.pb that is not one. Staging folders and stray
    # files are not versions at all.
    broken = os.path.join(push.base_path, '.incoming-2')
    os.makedirs(broken)
    with open(os.path.join(broken, 'saved_model.pb'), 'wb') as f:
      f.write(b'not a SavedModel')
    os.makedirs(os.path.join(push.base_path, 'tmp-3'))
    with open(os.path.join(push.base_path, 'README'), 'w') as f:
      f.write('not a version')
    os.rename(broken, os.path.join(push.base_path, '2'))
    wait_for(lambda: statuses(model_stub).get(2, (0,))[0] == State.END,
             what='version 2 to fail')
    time.sleep(0.3)  # Retries spent; the next polls leave it alone.
    state, error = statuses(model_stub)[2]
    assert state == State.END and error
    assert statuses(model_stub)[1] == (State.AVAILABLE, '')
    assert stub.Predict(images_request(), timeout=10).model_spec.version.value == 1
    # A good version 3 is picked up after the bad one.
    push(3)
    wait_for(lambda: 3 in server.registry.servables(MODEL), what='version 3')
    assert stub.Predict(images_request(), timeout=10).model_spec.version.value == 3
  finally:
    channel.close()
    server.stop()


def test_server_starts_before_the_first_push(push):
  server = model_servers.start_server((MODEL, push.base_path),
                                      file_system_poll_wait_seconds=0.05)
  channel, stub, model_stub = stubs(server)
  try:
    with pytest.raises(grpc.RpcError) as raised:
      stub.Predict(images_request(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as raised:
      statuses(model_stub)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    push(5)
    wait_for(lambda: 5 in server.registry.servables(MODEL), what='version 5')
    assert stub.Predict(images_request(), timeout=10).model_spec.version.value == 5
  finally:
    channel.close()
    server.stop()


def test_version_removed_from_disk_is_unloaded(push):
  push(1)
  push(2)
  config = model_registry.ModelConfig(MODEL, push.base_path,
                                      model_registry.VersionPolicy('all'))
  server = model_servers.start_server(config,
                                      file_system_poll_wait_seconds=0.05)
  try:
    assert sorted(server.registry.servables(MODEL)) == [1, 2]
    shutil.rmtree(os.path.join(push.base_path, '2'))
    wait_for(lambda: sorted(server.registry.servables(MODEL)) == [1],
             what='version 2 to be unloaded')
  finally:
    server.stop()


def test_two_models_from_a_model_config_file(tmp_path, template_version):
  for name in ('mnist', 'digits'):
    stand_in_models.write_version(str(tmp_path / name), 7,
                                  template=template_version)
  config_file = tmp_path / 'models.config'
  config_file.write_text(f'''
model_config_list {{
  config {{ name: "mnist" base_path: "{tmp_path / 'mnist'}"
           model_platform: "tensorflow" }}
  config {{ name: "digits" base_path: "{tmp_path / 'digits'}"
           model_version_policy {{ specific {{ versions: 7 }} }}
           version_labels {{ key: "stable" value: 7 }} }}
}}''')
  models = model_registry.read_model_config_file(str(config_file))
  assert [m.name for m in models] == ['mnist', 'digits']
  assert models[1].policy == model_registry.VersionPolicy('specific',
                                                          versions=(7,))
  assert models[1].labels == {'stable': 7}
  server = model_servers.start_server(*models, file_system_poll_wait_seconds=0)
  channel, stub, _ = stubs(server)
  try:
    request = images_request(version_label='stable')
    request.model_spec.name = 'digits'
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.name == 'digits'
    assert response.model_spec.version.value == 7
    assert np.argmax(tf.make_ndarray(response.outputs['scores'])) in range(10)
  finally:
    channel.close()
    server.stop()
