"""Loading a version folder as a servable: the session, its batching, warm-up.

The registry (serving/core/model_registry.py) decides which versions to load and
when; this is how one SavedModel version becomes ready to answer, as TF
Serving's SavedModelBundle source adapter and loader do
(servables/tensorflow/saved_model_bundle_factory.cc, saved_model_warmup.cc):
load the MetaGraph of the configured tags into a session, give its signatures
the server's batching parameters (or, with
--enable_per_model_batching_parameters, the version's own
batching_params.pbtxt), then replay its warm-up requests before it is
published.
"""

import logging
import os
from typing import Optional, Sequence

import tensorflow as tf

from serving.servables import batching
from serving.servables import servable as servable_lib
from serving.servables import warmup

# A version's own batching parameters (--enable_per_model_batching_parameters).
PER_MODEL_BATCHING_FILE = 'batching_params.pbtxt'

log = logging.getLogger(__name__)


class SavedModelLoader:
  """The registry's Loader for SavedModel version folders."""

  def __init__(self, *, tags: Sequence[str],
               batching_params: Optional[batching.BatchingParameters],
               per_model_batching: bool, warmup_iterations: int):
    """warmup_iterations: how often each warm-up request is replayed (TF
    Serving's --num_request_iterations_for_warmup, at least once); 0: no
    warm-up (--enable_model_warmup=false)."""
    self.tags = list(tags)
    self.batching_params = batching_params
    self._per_model_batching = per_model_batching
    self._warmup_iterations = warmup_iterations

  def is_complete(self, path: str) -> bool:
    return servable_lib.is_saved_model_dir(path)

  def batching_for(self, path: str) -> Optional[batching.BatchingParameters]:
    """The server's batching parameters, or with per-model batching the
    version's own batching_params.pbtxt when it has one (TF Serving's rule)."""
    if self.batching_params and self._per_model_batching:
      own = os.path.join(path, PER_MODEL_BATCHING_FILE)
      if tf.io.gfile.exists(own):
        return batching.load_batching_parameters(own)
    return self.batching_params

  def load(self, name: str, version: int, path: str) -> servable_lib.Servable:
    servable = servable_lib.Servable.load(name, version, path,
                                          self.batching_for(path), tags=self.tags)
    if self._warmup_iterations:
      try:
        calls = warmup.warm_up(servable, self._warmup_iterations)
      except BaseException:
        servable.close()
        raise
      log.info('model %r version %d: %d warm-up calls', name, version, calls)
    return servable
