"""The model server's REST API (serving/model_servers/rest_server.py), as TF
Serving's REST clients use it: model status, metadata, :predict in row and
columnar form, :classify, and TF Serving's error statuses.

One server on loopback (free ports) serves the model under `model_base_path`
(tests/serving/conftest.py); the expected answers come from the same SavedModel
called in-process.
"""

import base64

import numpy as np
import pytest

from models import serving_requests
from tests.testutil.mnist_requests import MODEL
from tests.testutil.mnist_requests import expected
from tests.testutil.mnist_requests import rest


def test_rest_model_status(server, version):
  status, body = rest(server, 'GET', '/v1/models/mnist')
  assert status == 200
  assert body == {'model_version_status': [{
      'version': str(version), 'state': 'AVAILABLE',
      'status': {'error_code': 'OK', 'error_message': ''}}]}
  status, body = rest(server, 'GET', f'/v1/models/mnist/versions/{version}')
  assert status == 200 and len(body['model_version_status']) == 1


def test_rest_metadata(server, version):
  status, body = rest(server, 'GET', '/v1/models/mnist/metadata')
  assert status == 200
  assert body['model_spec'] == {'name': MODEL, 'signature_name': '',
                                'version': str(version)}
  signatures = body['metadata']['signature_def']['signature_def']
  images_input = signatures['predict_images']['inputs']['images']
  assert images_input['dtype'] == 'DT_FLOAT'
  assert [d['size'] for d in images_input['tensor_shape']['dim']] == ['-1', '784']
  status, body = rest(server, 'GET',
                      f'/v1/models/mnist/versions/{version}/metadata')
  assert status == 200


def test_rest_predict_row_format(server, reference, images):
  pixels = serving_requests.unit_floats(images)
  status, body = rest(server, 'POST', '/v1/models/mnist:predict', {
      'signature_name': 'predict_images', 'instances': pixels.tolist()})
  assert status == 200
  want = expected(reference, 'predict_images', images=pixels)['scores']
  np.testing.assert_allclose(body['predictions'], want, rtol=1e-5, atol=1e-6)


def test_rest_predict_columnar_format(server, reference, images):
  pixels = serving_requests.unit_floats(images)
  status, body = rest(server, 'POST', '/v1/models/mnist:predict', {
      'signature_name': 'predict_images', 'inputs': {'images': pixels.tolist()}})
  assert status == 200
  want = expected(reference, 'predict_images', images=pixels)['scores']
  np.testing.assert_allclose(body['outputs'], want, rtol=1e-5, atol=1e-6)


def test_rest_predict_examples_as_base64(server, reference, images, version):
  serialized = serving_requests.encode_examples(images)
  instances = [{'b64': base64.b64encode(s).decode()} for s in serialized]
  status, body = rest(server, 'POST',
                      f'/v1/models/mnist/versions/{version}:predict',
                      {'instances': instances})
  assert status == 200
  want = expected(reference, 'serving_default',
                  examples=np.array(serialized, dtype=object))
  assert [row['classes'] for row in body['predictions']] == (
      want['classes'].tolist())
  np.testing.assert_allclose([row['probabilities'] for row in body['predictions']],
                             want['probabilities'], rtol=1e-5, atol=1e-6)


def test_rest_classify(server, reference, images):
  status, body = rest(server, 'POST', '/v1/models/mnist:classify', {
      'signature_name': 'classify',
      'examples': [{'image': row.tolist()} for row in images]})
  assert status == 200
  want = expected(reference, 'classify', inputs=np.array(
      serving_requests.encode_examples(images), dtype=object))
  assert len(body['results']) == len(images)
  for result, scores in zip(body['results'], want['scores']):
    assert [label for label, _ in result] == [str(d) for d in range(10)]
    np.testing.assert_allclose([s for _, s in result], scores, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize('method,path,body,status,words', [
    ('POST', '/v1/models/nope:predict', {'instances': [[0.0] * 784]}, 404,
     ['nope']),
    ('POST', '/v1/models/mnist/versions/999:predict',
     {'signature_name': 'predict_images', 'instances': [[0.0] * 784]}, 404,
     ['999']),
    ('POST', '/v1/models/mnist/labels/stable:predict',
     {'instances': [[0.0] * 784]}, 400, ['stable']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'nope', 'instances': [[0.0] * 784]}, 400, ['nope']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'predict_images', 'instances': [{'pixels': [0.0] * 784}]},
     400, ['images']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'predict_images', 'inputs': {'pixels': [[0.0] * 784]}},
     400, ['images']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'predict_images', 'instances': [['a'] * 784]}, 400,
     ['float']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'predict_images', 'instances': [[0.0] * 783]}, 400,
     ['783', '784']),
    ('POST', '/v1/models/mnist:predict',
     {'signature_name': 'predict_images', 'instances': [[0.0] * 784, [0.0]]},
     400, ['shape']),
    ('POST', '/v1/models/mnist:predict',
     {'instances': [[0.0]], 'inputs': [[0.0]]}, 400, ['only one of']),
    ('POST', '/v1/models/mnist:predict', {'signature_name': 'predict_images'},
     400, ['instances']),
    ('POST', '/v1/models/mnist:predict', b'{"instances": [1, 2', 400,
     ['JSON']),
    ('POST', '/v1/models/mnist:predict', b'', 400, ['empty']),
    ('POST', '/v1/models/mnist:predict', b'[' * 100000 + b']' * 100000, 400,
     ['JSON']),
    ('POST', '/v1/models/mnist:classify', {'signature_name': 'classify'}, 400,
     ['examples']),
    ('POST', '/v1/models/mnist:classify',
     {'signature_name': 'classify', 'examples': [{'image': [0.5] * 784}]}, 400,
     ['int64']),
    ('POST', '/v1/models/mnist:regress',
     {'signature_name': 'classify', 'examples': [{}]}, 400,
     ['Expected one output Tensor.']),
    ('POST', '/v1/models/mnist:explain', {}, 400, ['Malformed']),
    ('GET', '/v1/models', None, 400, ['model name']),
    ('GET', '/v1/models/nope', None, 404, ['nope']),
    ('GET', '/v1/models/mnist/versions/999', None, 404, ['999']),
    ('GET', '/healthz', None, 404, ['/healthz']),
])
def test_rest_errors(server, method, path, body, status, words):
  got_status, got = rest(server, method, path, body)
  assert got_status == status, got
  assert set(got) == {'error'}
  for word in words:
    assert word in got['error'], got['error']


def test_rest_server_survives_bad_requests(server):
  status, _ = rest(server, 'POST', '/v1/models/mnist:predict', b'\xff\xfe\x00',
                   headers={'Content-Type': 'application/json'})
  assert status == 400
  status, _ = rest(server, 'POST', '/v1/models/mnist:predict', b'{}',
                   headers={'Content-Length': 'many'})
  assert status == 400
  status, _ = rest(server, 'GET', '/v1/models/mnist')
  assert status == 200

