"""The trainer's hyper-parameters: one frozen dataclass, beside the code that reads it.

It lives with the model code, not in pipeline/, so that models/ stands on its own
and TFX hashes it together with the module file when deciding whether a cached
Trainer is still valid. The pipeline's profiles (pipeline/config.py) choose values;
`run_fn` receives them through the Trainer's custom_config.
"""

import dataclasses

# The CNNs models/trainer/model.py builds.
ARCHITECTURES = ('reference', 'compact')
# The most training.crop may cut from each border: 28 - 2 x 6 = 16 pixels stay,
# which the two downsamplings bring to the 4x4 the conv head needs.
MAX_CROP = 6
# How `augment` distorts the digits (model.py, augmentation.py).
AUGMENTATIONS = ('per_member', 'shared_chain')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Hyper-parameters of the CNN and its optimisation; see recipe.md for why."""
  architecture: str = 'compact'  # or 'reference' (model.py)
  filters: int = 16  # of the first block; doubled after the first downsampling
  # Networks trained side by side on the same augmented batches, each from its
  # own initial weights and dropout and with its own loss; the served model
  # averages their probabilities. Three of 16 filters cost what one of 32 does.
  members: int = 3
  # Pixels cut from each border of the (distorted) image before the network
  # sees it: MNIST's digits sit in the centre 20x20 of the 28x28 frame, and a
  # 2-pixel border holds 0.24% of the ink, while convolving it costs a quarter of
  # every layer's arithmetic (recipe.md, "The empty border"). 0 keeps all 28x28.
  crop: int = 2
  epochs: int = 13
  # Per replica; the global batch scales with replicas. 256 rather than 128: the
  # small networks use the CPU better on bigger batches, which pays for the
  # thirteenth epoch (recipe.md, "Batches of 256").
  batch_size: int = 256
  learning_rate: float = 4e-3  # Adam's peak rate, then a cosine decay
  # AdamW's decoupled weight decay: each step shrinks the weights by
  # learning rate x weight_decay. 0, plain Adam: 0.05 measured no better in the
  # pipeline (recipe.md).
  weight_decay: float = 0.0
  warmup_epochs: float = 1.0  # linear ramp from 0 to learning_rate first
  final_learning_rate_fraction: float = 0.01
  dropout: float = 0.15
  # After the conv blocks, drop whole channels of an image (Keras'
  # SpatialDropout2D) rather than single activations: one random draw per
  # channel instead of per pixel, which made the default train 15% faster
  # (recipe.md, "Where the rest of the time goes: dropout"). The head's dropout
  # drops single activations either way.
  spatial_dropout: bool = True
  augment: bool = True  # random shifts, rotations, zooms (training only)
  # 'per_member': each network draws its own random affine map of every image,
  # resampled once (augmentation.py). 'shared_chain': Keras' rotation, zoom and
  # translation layers one after the other, three resamplings, one draw shared
  # by every network (the reference recipe's).
  augmentation: str = 'per_member'
  shift: float = 0.1  # fraction of the image, each direction
  rotation_degrees: float = 10.0
  zoom: float = 0.1
  # 'per_member' only: the standard deviation, in pixels, of a smooth random
  # displacement of the strokes after the affine map (augmentation.py). 0, none:
  # 1.0 cost 11% per image and measured no better in 11 epochs (recipe.md).
  elastic: float = 0.0
  # Stop when the validation loss has not improved for this many epochs (0: never
  # stop early); the weights of the best epoch are kept either way.
  early_stopping_patience: int = 0
  # Seeds weight initialisation, shuffling and augmentation: the same seed on the
  # same machine and TensorFlow build trains the same model.
  seed: int = 0
  # Training processes, under MultiWorkerMirroredStrategy. 1: the Trainer's own
  # process. More, where no cluster is given: that many worker processes on this
  # machine, on loopback (multi_worker.py). Where a cluster gives TF_CONFIG
  # (Vertex AI worker pools, a Kubeflow TFJob), its workers train and this is
  # not read.
  workers: int = 1
  # 16-bit compute where the hardware has it: float16 on GPU, bfloat16 on TPU and
  # on CPUs with AVX512-BF16 or AMX; float32 elsewhere (distribution.py). The
  # exported model computes in float32 either way.
  mixed_precision: bool = True

  def __post_init__(self):
    # Here rather than in the Trainer: `--set training.architecture=...` is then
    # refused on the command line, before the pipeline starts.
    if self.members < 1:
      raise ValueError(f'training.members={self.members}: a model needs at '
                       'least one network (1: a single network, no ensemble)')
    if self.workers < 1:
      raise ValueError(f'training.workers={self.workers}: choose 1 (the '
                       'Trainer alone) or more worker processes')
    if not 0 <= self.crop <= MAX_CROP:
      raise ValueError(f'training.crop={self.crop}: choose 0 to {MAX_CROP} '
                       'pixels (the network needs at least 16x16 of the image)')
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f'training.architecture={self.architecture!r}: choose one '
                       f'of {", ".join(ARCHITECTURES)}')
    if self.augmentation not in AUGMENTATIONS:
      raise ValueError(f'training.augmentation={self.augmentation!r}: choose one '
                       f'of {", ".join(AUGMENTATIONS)}')
