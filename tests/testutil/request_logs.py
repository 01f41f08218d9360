"""Request logs (TF Serving's logging_config) written by a real server, and read
back record by record."""

import glob
import time

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import serving_contract as contract
from models import serving_requests
from pipeline import client as client_lib
from pipeline.reports import request_log_report as request_log_reader
from serving.core import model_registry
from tests.testutil import mnist_requests
from tests.testutil import model_servers
from tests.testutil import stand_in_models

MODEL = contract.MODEL_NAME


def write_config(path, base_path, prefix=None, rate=1.0,
                 collector='tfrecord') -> str:
  """A TF Serving model config file serving MODEL, logged to `prefix`."""
  logging = ''
  if prefix is not None:
    logging = f'''
    logging_config {{
      log_collector_config {{ type: "{collector}" filename_prefix: "{prefix}" }}
      sampling_config {{ sampling_rate: {rate} }}
    }}'''
  with open(path, 'w') as f:
    f.write(f'''model_config_list {{
  config {{
    name: "{MODEL}"
    base_path: "{base_path}"
    model_platform: "tensorflow"{logging}
  }}
}}
''')
  return str(path)


def start(config_file):
  """A server (in this process) for the models of a model config file."""
  models = model_registry.read_model_config_file(config_file)
  return model_servers.start_server(*models, file_system_poll_wait_seconds=0)


def log_files(prefix):
  return sorted(glob.glob(prefix + '*'))


def read_back(prefix):
  """The PredictionLogs of the files of `prefix`, none of them incomplete."""
  notes = []
  entries = [entry for _, entry in request_log_reader.read_logs(
      log_files(prefix), notes)]
  assert not notes
  return entries


def images_request(images):
  return client_lib.predict_request(images, MODEL, contract.IMAGES_SIGNATURE)


def log_requests(base_path: str, root) -> dict:
  """Requests over every path, all logged (sampling_rate 1.0), to a server on
  `base_path` with its config and logs under the folder `root`; the server is
  stopped before the log is read. Returns what was sent and answered."""
  prefix = str(root / 'logs' / 'requests')  # the folder does not exist yet
  config = write_config(root / 'models.config', base_path, prefix)
  images = stand_in_models.random_images(12, seed=7)
  calls = []  # (log field, request, response) in the order sent
  started = time.time()
  server = start(config)
  try:
    with grpc.insecure_channel(f'127.0.0.1:{server.grpc_port}') as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      for field, call, request in (
          ('predict_log', stub.Predict, images_request(images[0:3])),
          ('predict_log', stub.Predict,
           mnist_requests.examples_request(images[3:5], signature='')),
          ('classify_log', stub.Classify,
           mnist_requests.classify_request(images[5:7])),
          ('multi_inference_log', stub.MultiInference,
           mnist_requests.multi_inference_request(images[7:8]))):
        calls.append((field, request, call(request, timeout=10)))
      # A failed request is not logged.
      bad = images_request(images[:1])
      bad.model_spec.signature_name = 'no_such_signature'
      with pytest.raises(grpc.RpcError):
        stub.Predict(bad, timeout=10)
    status, answer = mnist_requests.rest(
        server.rest_port, 'POST', f'/v1/models/{MODEL}:predict', {
            'signature_name': 'predict_images',
            'instances': serving_requests.unit_floats(images[8:10]).tolist()})
    assert status == 200, answer
    calls.append(('rest_predict', images[8:10], answer))
    status, answer = mnist_requests.rest(
        server.rest_port, 'POST', f'/v1/models/{MODEL}/versions/1:classify', {
            'signature_name': 'classify',
            'examples': [{'image': row.tolist()} for row in images[10:12]]})
    assert status == 200, answer
    calls.append(('rest_classify', images[10:12], answer))
    destinations = server.registry.request_logger.destinations()
  finally:
    server.stop()
  return dict(prefix=prefix, calls=calls, started=started,
              finished=time.time(), destinations=destinations)
