"""`python -m serving`: the model server, with tensorflow_model_server's flags."""

import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) says nothing
# useful; -v lets what remains of it through (main.py).
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from serving.model_servers import main  # pylint: disable=g-import-not-at-top,wrong-import-position

main.main(prog_name='python -m serving')  # pylint: disable=no-value-for-parameter
