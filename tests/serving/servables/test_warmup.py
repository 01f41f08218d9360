"""Warm-up (serving/servables/warmup.py): the requests a version replays before
it takes traffic, recorded by the exporter or made up for its numeric
signatures."""

import os

import numpy as np
import tensorflow as tf

from models import serving_contract as contract
from serving.core import model_registry
from serving.model_servers import options as options_lib
from serving.model_servers import server as server_lib
from serving.servables import servable
from serving.servables import warmup
from tests.testutil import stand_in_models


def _write_warmup_file(version_dir, signature_name):
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  record = prediction_log_pb2.PredictionLog()
  request = record.predict_log.request
  request.model_spec.name = 'mnist'
  request.model_spec.signature_name = signature_name
  request.inputs[contract.IMAGES_INPUT].CopyFrom(
      tf.make_tensor_proto(np.zeros((1, 784), np.float32)))
  path = os.path.join(version_dir, contract.WARMUP_FILE)
  os.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(record.SerializeToString())
    writer.write(record.SerializeToString())


def test_warm_up_without_requests_calls_the_numeric_signatures(tmp_path):
  """Without recorded requests only predict_images (float images) can be called:
  serving_default and classify take serialized examples only the model knows."""
  version_dir = stand_in_models.write_version(str(tmp_path / 'm'), 1)
  loaded = servable.Servable.load('m', 1, version_dir, None)
  assert warmup.warm_up(loaded) == len(warmup._SYNTHETIC_BATCH_SIZES)  # pylint: disable=protected-access


def test_the_pushed_model_carries_warmup_requests_for_every_signature(
    smoke_model_version):
  """The exporter writes TF Serving's warm-up file; the server replays it all."""
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  path = os.path.join(smoke_model_version, contract.WARMUP_FILE)
  records = [prediction_log_pb2.PredictionLog.FromString(r.numpy())
             for r in tf.data.TFRecordDataset(path)]
  signatures = {(r.WhichOneof('log_type'),
                 getattr(r, r.WhichOneof('log_type')).request.model_spec
                 .signature_name) for r in records}
  assert signatures == {('predict_log', 'serving_default'),
                        ('predict_log', 'predict_images'),
                        ('classify_log', 'classify')}
  loaded = servable.Servable.load('m', 1, smoke_model_version, None)
  assert warmup.warm_up(loaded) == len(records) == 6


def test_warm_up_replays_tf_serving_warmup_requests(tmp_path):
  version_dir = stand_in_models.write_version(str(tmp_path / 'm'), 1)
  _write_warmup_file(version_dir, 'predict_images')
  loaded = servable.Servable.load('m', 1, version_dir, None)
  assert warmup.warm_up(loaded) == 2


def test_failing_warmup_requests_fail_the_load(tmp_path):
  base_path = str(tmp_path / 'm')
  version_dir = stand_in_models.write_version(base_path, 1)
  _write_warmup_file(version_dir, 'no_such_signature')
  registry = server_lib.model_registry_for(
      [model_registry.ModelConfig('m', base_path)],
      options_lib.ServerOptions(file_system_poll_wait_seconds=0,
                                        max_num_load_retries=0))
  registry.start()
  try:
    assert registry.servables('m') == {}
    [status] = registry.version_statuses('m')
    assert status.state == status.END
    assert 'no_such_signature' in status.status.error_message
  finally:
    registry.stop()

