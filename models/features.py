"""The feature contract shared by ExampleGen, the schema, Transform, Trainer and serving.

ExampleGen writes each MNIST digit as a tf.Example with two int64 features:
  image: the 28x28 pixels, row-major, as 784 integers in 0-255;
  label: the digit, 0-9.
int64 rather than one 784-byte string: the schema can then state the length and the
0-255 domain of every pixel, TFDV computes real pixel statistics, and a client builds
the example without knowing a byte layout.
"""

IMAGE_KEY = 'image'
LABEL_KEY = 'label'
IMAGE_ROWS = 28
IMAGE_COLS = 28
IMAGE_PIXELS = IMAGE_ROWS * IMAGE_COLS
NUM_CLASSES = 10

# Names after Transform (what the Keras model reads).
TRANSFORMED_IMAGE_KEY = 'image_xf'
TRANSFORMED_LABEL_KEY = 'label_xf'
