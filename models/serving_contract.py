"""What an exported model and any TF Serving agree on, beyond the SavedModel itself.

The exporter (models/trainer/) writes these, the project's model server
(serving/) reads them, and the real tensorflow/serving does too.
"""

import os

# Recorded requests TF Serving replays before a new version takes traffic
# (servables/tensorflow/saved_model_warmup.cc): a TFRecord file of PredictionLogs.
WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')
