"""Small SavedModels of the kinds TF Serving's own tests serve, for serving tests.

Written here, in the spirit of TF Serving's testdata (saved_model_half_plus_two.py
and the models tensorflow_model_server_test.py exports), so the tests need no copy
of TF Serving:

- `write_tf1_half_plus_two`: a TF1 graph saved with SavedModelBuilder. y = a*x + b
  with variables a=0.5, b=2 (c=3 for y2 and y3). x is an Identity of a
  parse_example output, not a placeholder, so Predict feeds an internal tensor.
  Signatures: serving_default (predict, x [-1,1] -> y), classify_x_to_y
  (serialized tf.Examples `inputs` -> `scores`), regress_x_to_y /
  regress_x_to_y2 (`inputs` -> `outputs`), regress_x2_to_y3 (x2 [-1,1] -> y3).
- `write_tf2_half_plus_two`: the same signatures from tf.saved_model.save, whose
  predict input is a fixed TensorSpec([1]) as in TF Serving's TF2 testdata.
- `write_tf2_constants`: several signatures of a TensorSpec(None) input that
  return scalars (1.0 and 2.0), as test_tf_saved_model_save_multiple_signatures.
- `write_keras_sequential`: Input 'x' [None, 1] -> Dense(1, ones, zeros) ->
  Lambda 'y', saved with tf.saved_model.save, by Keras 2 (tf_keras: signature
  x -> y) or Keras 3 (signature inputs -> output_0).

Every writer takes the version directory to create (e.g. <base>/00000123).
"""

import os
import shutil
import tempfile

import tensorflow as tf

A, B, C = 0.5, 2.0, 3.0
REGRESS_METHOD = 'tensorflow/serving/regress'
CLASSIFY_METHOD = 'tensorflow/serving/classify'
PREDICT_METHOD = 'tensorflow/serving/predict'
ASSET_TEXT = 'asset-file-contents'


def example_features():
  return {'x': tf.io.FixedLenFeature([1], tf.float32),
          'x2': tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}


def write_tf1_half_plus_two(export_dir: str) -> str:
  """TF1 graph + SavedModelBuilder, with an asset file and a main op."""
  v1 = tf.compat.v1
  graph = tf.Graph()
  with graph.as_default(), v1.Session(graph=graph) as session:
    a = v1.Variable(A, name='a')
    b = v1.Variable(B, name='b')
    c = v1.Variable(C, name='c')
    serialized = v1.placeholder(tf.string, name='tf_example')
    parsed = v1.parse_example(serialized, example_features())
    for key in ('x', 'x2'):  # As TF Serving's testdata declares them: [-1,1].
      parsed[key].set_shape([None, 1])
    x = tf.identity(parsed['x'], name='x')
    x2 = tf.identity(parsed['x2'], name='x2')
    y = tf.add(tf.multiply(a, x), b, name='y')
    y2 = tf.add(tf.multiply(a, x), c, name='y2')
    y3 = tf.add(tf.multiply(a, x2), c, name='y3')

    # An asset, restored through the graph's asset tensor at load time.
    assets_dir = tempfile.mkdtemp(prefix='half-plus-two-assets-')
    asset_path = os.path.join(assets_dir, 'foo.txt')
    with open(asset_path, 'w') as f:
      f.write(ASSET_TEXT)
    asset = tf.constant(asset_path, name='filename_tensor')
    v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, asset)

    session.run(v1.global_variables_initializer())
    info = v1.saved_model.utils.build_tensor_info
    predict = v1.saved_model.signature_def_utils.build_signature_def(
        inputs={'x': info(x)}, outputs={'y': info(y)},
        method_name=PREDICT_METHOD)
    classify = v1.saved_model.classification_signature_def(
        examples=serialized, classes=None, scores=y)
    regress_y = v1.saved_model.regression_signature_def(serialized, y)
    regress_y2 = v1.saved_model.regression_signature_def(serialized, y2)
    regress_y3 = v1.saved_model.signature_def_utils.build_signature_def(
        inputs={'inputs': info(x2)}, outputs={'outputs': info(y3)},
        method_name=REGRESS_METHOD)
    builder = v1.saved_model.Builder(export_dir)
    builder.add_meta_graph_and_variables(
        session, [v1.saved_model.tag_constants.SERVING],
        signature_def_map={
            'serving_default': predict,
            'classify_x_to_y': classify,
            'regress_x_to_y': regress_y,
            'regress_x_to_y2': regress_y2,
            'regress_x2_to_y3': regress_y3,
        },
        assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
        main_op=v1.tables_initializer(),
        strip_default_attrs=True)
    builder.save()
  shutil.rmtree(assets_dir, ignore_errors=True)
  return export_dir


class _HalfPlusTwo(tf.Module):
  """TF Serving's TF2 half_plus_two: the predict input is exactly [1]."""

  def __init__(self):
    super().__init__()
    self.a = tf.Variable(A)
    self.b = tf.Variable(B)
    self.c = tf.Variable(C)

  def _parse(self, serialized):
    return tf.io.parse_example(serialized, example_features())

  @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
  def predict(self, x):
    return {'y': self.a * x + self.b}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='inputs')])
  def regress_x_to_y(self, serialized):
    return {'outputs': self.a * self._parse(serialized)['x'] + self.b}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='inputs')])
  def regress_x_to_y2(self, serialized):
    return {'outputs': self.a * self._parse(serialized)['x'] + self.c}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='inputs')])
  def classify_x_to_y(self, serialized):
    return {'scores': self.a * self._parse(serialized)['x'] + self.b}


def write_tf2_half_plus_two(export_dir: str) -> str:
  module = _HalfPlusTwo()
  tf.saved_model.save(module, export_dir, signatures={
      'serving_default': module.predict,
      'regress_x_to_y': module.regress_x_to_y,
      'regress_x_to_y2': module.regress_x_to_y2,
      'classify_x_to_y': module.classify_x_to_y,
  })
  return export_dir


def write_tf2_constants(export_dir: str) -> str:
  """serving_default -> {'y': 1.0}, custom_signature_key -> {'y': 2.0}: scalars."""
  root = tf.Module()
  root.one = tf.function(lambda x: {'y': tf.constant(1.0)})
  root.two = tf.function(lambda x: {'y': tf.constant(2.0)})
  spec = tf.TensorSpec(None, tf.float32)
  tf.saved_model.save(root, export_dir, signatures={
      'serving_default': root.one.get_concrete_function(spec),
      'custom_signature_key': root.two.get_concrete_function(spec),
  })
  return export_dir


def _identity(value):
  return value


def write_keras_sequential(export_dir: str, legacy: bool = True) -> str:
  """x [None, 1] -> Dense(1) with weight 1 and bias 0 -> Lambda 'y'.

  legacy=True builds it with Keras 2 (tf_keras, what TF_USE_LEGACY_KERAS=1
  selects), legacy=False with Keras 3.
  """
  if legacy:
    import tf_keras as keras  # pylint: disable=g-import-not-at-top
  else:
    import keras  # pylint: disable=g-import-not-at-top
  model = keras.Sequential([
      keras.Input(shape=(1,), name='x'),
      keras.layers.Dense(1, kernel_initializer='ones',
                         bias_initializer='zeros'),
      keras.layers.Lambda(_identity, name='y'),
  ])
  tf.saved_model.save(model, export_dir)
  return export_dir


def write_keras3_export(export_dir: str) -> str:
  """The Keras 3 model of write_keras_sequential(legacy=False), written by
  Model.export (an ExportArchive), the way Keras 3 documents for TF Serving."""
  import keras  # pylint: disable=g-import-not-at-top
  model = keras.Sequential([
      keras.Input(shape=(1,), name='x'),
      keras.layers.Dense(1, kernel_initializer='ones',
                         bias_initializer='zeros'),
      keras.layers.Lambda(_identity, name='y'),
  ])
  model.export(export_dir, format='tf_saved_model', verbose=False)
  return export_dir
