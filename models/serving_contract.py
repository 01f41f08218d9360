"""What an exported model and any TF Serving agree on, beyond the SavedModel itself.

The exporter (models/trainer/) writes these, the project's model server
(serving/) and clients read them, and the real tensorflow/serving does too. They
are plain strings, so that the client and `mnist-tfx --help` need not import
TensorFlow; tests/models/test_serving_contract.py checks them against TensorFlow's own
constants (tf.saved_model.*).
"""

import os

# --- TF Serving's names, the same for every model ------------------------------
# The MetaGraph TF Serving loads (tf.saved_model.SERVING).
SERVE_TAG = 'serve'
# The signature of a request that names none (DEFAULT_SERVING_SIGNATURE_DEF_KEY).
DEFAULT_SIGNATURE = 'serving_default'
# TF2 SavedModels name their init op with this SignatureDef; it is no signature.
INIT_OP_SIGNATURE = '__saved_model_init_op'
# A SignatureDef's method name says which API may call it (*_METHOD_NAME).
PREDICT_METHOD = 'tensorflow/serving/predict'
CLASSIFY_METHOD = 'tensorflow/serving/classify'
REGRESS_METHOD = 'tensorflow/serving/regress'
# The tensor keys of Classify and Regress signatures (CLASSIFY_INPUTS, ...).
CLASSIFY_INPUTS = 'inputs'
CLASSIFY_CLASSES = 'classes'
CLASSIFY_SCORES = 'scores'
REGRESS_INPUTS = 'inputs'
REGRESS_OUTPUTS = 'outputs'
# Recorded requests TF Serving replays before a new version takes traffic
# (servables/tensorflow/saved_model_warmup.cc): a TFRecord file of PredictionLogs.
WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')

# --- The pushed MNIST model: its name, its signatures (models/trainer/export.py) --
# The name it is served under when nobody names it (`mnist-tfx serve` without
# flags) and clients ask for by default. pipeline/config.py's model_name defaults
# to the same name (tests/pipeline/test_config.py holds the two together).
MODEL_NAME = 'mnist'
# DEFAULT_SIGNATURE: serialized tf.Examples -> probabilities [N, 10], classes [N]
EXAMPLES_INPUT = 'examples'
PROBABILITIES_OUTPUT = 'probabilities'
CLASSES_OUTPUT = 'classes'
# Float pixels [N, 784] in [0, 1] -> scores [N, 10] (TF Serving's MNIST tutorial)
IMAGES_SIGNATURE = 'predict_images'
IMAGES_INPUT = 'images'
SCORES_OUTPUT = 'scores'
# The Classify API (CLASSIFY_METHOD, CLASSIFY_INPUTS -> CLASSIFY_CLASSES, the
# digit names, and CLASSIFY_SCORES).
CLASSIFY_SIGNATURE = 'classify'
# The two that answer Predict with digit probabilities.
PREDICT_SIGNATURES = (DEFAULT_SIGNATURE, IMAGES_SIGNATURE)
