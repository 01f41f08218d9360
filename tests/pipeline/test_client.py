"""The clients (pipeline/client.py) over gRPC and REST, against a server on
loopback serving the model the smoke pipeline pushed. `mnist-tfx predict`
(tests/pipeline/cli/test_serving_commands.py) uses them for Predict."""

import numpy as np
import pytest

from models import serving_contract as contract
from pipeline import client as client_lib
from tests.testutil import model_servers
from tests.testutil import stand_in_models


@pytest.fixture(scope='module')
def server(model_base_path):
  server = model_servers.start_server((contract.MODEL_NAME, model_base_path),
                                      file_system_poll_wait_seconds=0)
  yield server
  server.stop()


def test_client_classify_and_metadata(server):
  images = stand_in_models.random_images(2)
  for client in (client_lib.GrpcClient(f'127.0.0.1:{server.grpc_port}'),
                 client_lib.RestClient(f'127.0.0.1:{server.rest_port}')):
    with client:
      results, _ = client.classify(images)
      assert [label for label, _ in results[0]] == [str(d) for d in range(10)]
      prediction = client.predict(images)
      np.testing.assert_allclose([score for _, score in results[1]],
                                 prediction.probabilities[1], atol=1e-6)
      assert client.metadata() and client.model_status()

