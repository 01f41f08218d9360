"""One servable, a loaded SavedModel version (TF Serving's servables/tensorflow/):
its signatures and the inference APIs that call them."""
