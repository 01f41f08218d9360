"""What a run did, for people: timings, evaluation, push, and pictures.

`summarize` reads the latest run from ML Metadata (per-component wall time, TFMA's
metrics, confusion matrix and validation, the InfraValidator's verdict, the Pusher's
result); `write` adds a report folder with the training curves, the confusion matrix
on the test split and a grid of misclassified test digits, plus an index.html that
shows them together.
"""

import dataclasses
import html
import json
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from components import idx
from models import features
from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline import mlmd

ACCURACY = 'sparse_categorical_accuracy'
# TFMA's name of the plot the Evaluator is configured with (pipeline.eval_config).
CONFUSION_MATRIX = 'multi_class_confusion_matrix_plot'


@dataclasses.dataclass
class Evaluation:
  candidate: Optional[float]
  baseline: Optional[float]
  per_digit: Dict[int, float]
  blessed: bool
  failures: List[str]
  # Test examples per (true digit, predicted digit), the candidate's; None for a
  # run whose Evaluator computed no confusion matrix.
  confusion_matrix: Optional[np.ndarray] = None


@dataclasses.dataclass
class InfraValidation:
  """The InfraBlessing (components/infra_validator.py; TFX's own InfraValidator
  records only `blessed`)."""
  blessed: bool
  reason: str
  signatures: List[str]
  requests: Optional[int]


@dataclasses.dataclass
class RunSummary:
  timings: List[Tuple[str, str, float]]  # node, state, seconds
  evaluation: Optional[Evaluation]
  infra_validation: Optional[InfraValidation]
  pushed: Optional[bool]
  pushed_version: Optional[str]
  pushed_new_version: Optional[bool]
  model_uri: Optional[str]
  model_run_uri: Optional[str]


def load_evaluation(evaluation_uri: str) -> Evaluation:
  """Overall and per-digit accuracy (candidate and baseline) and TFMA's verdict."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  candidate = baseline = None
  per_digit = {}
  for metrics in tfma.load_metrics(evaluation_uri):
    keys = list(metrics.slice_key.single_slice_keys)
    for entry in metrics.metric_keys_and_values:
      key = entry.key
      if key.name != ACCURACY or key.is_diff:
        continue
      value = entry.value.double_value.value
      is_baseline = key.model_name == 'baseline'
      if not keys:
        if is_baseline:
          baseline = value
        else:
          candidate = value
      elif not is_baseline and keys[0].column == features.LABEL_KEY:
        per_digit[int(keys[0].int64_value)] = value
  validation = tfma.load_validation_result(evaluation_uri)
  failures = []
  for per_slice in validation.metric_validations_per_slice:
    for failure in per_slice.failures:
      failures.append(
          f'{failure.metric_key.name} = '
          f'{failure.metric_value.double_value.value:.4f} fails '
          f'{_threshold_text(failure.metric_threshold)}')
  return Evaluation(candidate, baseline, dict(sorted(per_digit.items())),
                    bool(validation.validation_ok), failures,
                    load_confusion_matrix(evaluation_uri))


def load_confusion_matrix(evaluation_uri: str) -> Optional[np.ndarray]:
  """The candidate's confusion matrix on the whole test split, from TFMA's plots:
  [true digit, predicted digit] -> examples."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  for plots in tfma.load_plots(evaluation_uri):
    if plots.slice_key.single_slice_keys:
      continue  # a per-digit slice; the matrix of the whole split is wanted
    for entry in plots.plot_keys_and_values:
      if entry.key.name != CONFUSION_MATRIX or entry.key.model_name == 'baseline':
        continue
      matrix = np.zeros((features.NUM_CLASSES, features.NUM_CLASSES), np.int64)
      # One matrix per threshold; the Evaluator asks for the default, 0.0: every
      # example counts for its most likely digit.
      for cell in entry.value.multi_class_confusion_matrix_at_thresholds.matrices[
          0].entries:
        matrix[cell.actual_class_id, cell.predicted_class_id] = round(
            cell.num_weighted_examples)
      return matrix
  return None


def _threshold_text(threshold) -> str:
  if threshold.HasField('value_threshold'):
    return f'>= {threshold.value_threshold.lower_bound.value:g}'
  return (f'change vs baseline >= '
          f'{threshold.change_threshold.absolute.value:g}')


def load_infra_validation(blessing) -> InfraValidation:
  """The verdict recorded on an InfraBlessing artifact (an MLMD Artifact)."""
  props = blessing.custom_properties

  def text(key):
    return props[key].string_value if key in props else ''

  return InfraValidation(
      blessed=props['blessed'].int_value == 1 if 'blessed' in props else False,
      reason=text('reason'),
      signatures=[s for s in text('signatures').split(',') if s],
      requests=props['requests'].int_value if 'requests' in props else None)


def summarize(config: config_lib.PipelineConfig) -> RunSummary:
  nodes = mlmd.latest_run(config)
  evaluation = mlmd.output(nodes, 'Evaluator', 'evaluation')
  infra_blessing = mlmd.output(nodes, 'InfraValidator', 'blessing')
  pusher = mlmd.output(nodes, 'Pusher', 'pushed_model')
  props = pusher.custom_properties if pusher is not None else {}
  model = mlmd.output(nodes, 'Trainer', 'model')
  model_run = mlmd.output(nodes, 'Trainer', 'model_run')
  return RunSummary(
      timings=[(n.node_id, n.state, n.seconds) for n in nodes],
      evaluation=(load_evaluation(evaluation.uri)
                  if evaluation is not None else None),
      infra_validation=(load_infra_validation(infra_blessing)
                        if infra_blessing is not None else None),
      pushed=bool(props['pushed'].int_value) if 'pushed' in props else None,
      pushed_version=props['pushed_version'].string_value
      if 'pushed_version' in props else None,
      pushed_new_version=bool(props['pushed_new_version'].int_value)
      if 'pushed_new_version' in props else None,
      model_uri=model.uri if model is not None else None,
      model_run_uri=model_run.uri if model_run is not None else None)


def format_summary(summary: RunSummary) -> List[str]:
  lines = ['component wall time:']
  for node, state, seconds in summary.timings:
    lines.append(f'  {node:32s} {seconds:7.1f} s  {state.lower()}')
  lines.append(f'  {"total":32s} {sum(t for _, _, t in summary.timings):7.1f} s')
  e = summary.evaluation
  if e:
    def pct(v):
      return 'none' if v is None else f'{100 * v:.2f}%'
    lines.append(f'test accuracy: candidate {pct(e.candidate)}, '
                 f'baseline {pct(e.baseline)}')
    lines.append('per digit: ' + '  '.join(
        f'{d}:{100 * a:.2f}' for d, a in e.per_digit.items()))
    lines.append('blessed: yes' if e.blessed else
                 'blessed: NO (' + '; '.join(e.failures) + ')')
  v = summary.infra_validation
  if v:
    if v.blessed and v.requests is not None:
      lines.append(f'infra validation: passed ({len(v.signatures)} signatures, '
                   f'{v.requests} requests)')
    elif v.blessed:
      lines.append('infra validation: passed')
    else:
      lines.append(f'infra validation: FAILED ({v.reason or "see the log"})')
  if summary.pushed:
    how = 'pushed as new version' if summary.pushed_new_version else (
        'already serving as version')
    lines.append(f'{how} {summary.pushed_version}')
  elif summary.pushed is not None:
    why = [what for what, failed in (
        ('not blessed by the Evaluator', e and not e.blessed),
        ('failed infra validation', v and not v.blessed)) if failed]
    lines.append('not pushed' + (f' ({" and ".join(why)})' if why else '') +
                 ': the serving directory is unchanged')
  return lines


# --- pictures -----------------------------------------------------------------


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_training_curves(history_path: str, output: str) -> None:
  with open(history_path) as f:
    record = json.load(f)
  history, best = record['history'], record['best_epoch']
  plt = _plt()
  fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
  epochs = range(1, len(history['loss']) + 1)
  for ax, name, title in ((loss_ax, 'loss', 'loss'),
                          (acc_ax, ACCURACY, 'accuracy')):
    ax.plot(epochs, history[name], label='train')
    ax.plot(epochs, history['val_' + name], label='valid')
    ax.axvline(best, color='grey', linestyle=':', label=f'kept (epoch {best})')
    ax.set_xlabel('epoch')
    ax.set_title(title)
    ax.legend()
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)


def predict_test_set(model_dir: str, images: np.ndarray) -> np.ndarray:
  """Class probabilities of `images` (uint8 [N, 784]) through `predict_images`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  predict = tf.saved_model.load(model_dir).signatures[contract.IMAGES_SIGNATURE]
  scores = []
  for batch in np.array_split(images, max(1, len(images) // 1000)):
    pixels = tf.constant(batch.astype(np.float32) / 255.0)
    outputs = predict(**{contract.IMAGES_INPUT: pixels})
    scores.append(outputs[contract.SCORES_OUTPUT].numpy())
  return np.concatenate(scores)


def plot_confusion_matrix(matrix: np.ndarray, output: str) -> None:
  """Draws `matrix` ([true digit, predicted digit] -> examples)."""
  digits = range(len(matrix))
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 5.5))
  ax.imshow(np.log1p(matrix), cmap='Blues')
  for t in digits:
    for p in digits:
      if matrix[t, p]:
        ax.text(p, t, str(matrix[t, p]), ha='center', va='center', fontsize=7,
                color='white' if t == p else 'black')
  ax.set_xticks(digits)
  ax.set_yticks(digits)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(f'test set: {int(np.trace(matrix))}/{matrix.sum()} correct')
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)


def plot_misclassified(images, labels, predicted, output: str,
                       limit: int = 48) -> int:
  wrong = np.flatnonzero(labels != predicted)
  shown = wrong[:limit]
  cols = 12
  rows = max(1, int(np.ceil(len(shown) / cols)))
  plt = _plt()
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.1))
  for ax in np.ravel(axes):
    ax.axis('off')
  for ax, i in zip(np.ravel(axes), shown):
    ax.imshow(images[i].reshape(features.IMAGE_ROWS, features.IMAGE_COLS),
              cmap='gray_r')
    ax.set_title(f'{predicted[i]} (true {labels[i]})', fontsize=7)
  fig.suptitle(f'misclassified test digits: {len(wrong)} '
               f'(first {len(shown)} shown; predicted, true)', fontsize=9)
  fig.tight_layout()
  fig.savefig(output, dpi=100)
  plt.close(fig)
  return len(wrong)


def write(config: config_lib.PipelineConfig, summary: RunSummary,
          output_dir: Optional[str] = None) -> str:
  """Writes the pictures and index.html of `summary`; returns the folder."""
  output_dir = output_dir or os.path.join(config.reports_dir, 'latest-run')
  os.makedirs(output_dir, exist_ok=True)
  pictures = []
  history = summary.model_run_uri and os.path.join(summary.model_run_uri,
                                                   'history.json')
  if history and os.path.exists(history):
    plot_training_curves(history, os.path.join(output_dir, 'training_curves.png'))
    pictures.append('training_curves.png')
  if summary.evaluation and summary.evaluation.confusion_matrix is not None:
    plot_confusion_matrix(summary.evaluation.confusion_matrix,
                          os.path.join(output_dir, 'confusion_matrix.png'))
    pictures.append('confusion_matrix.png')
  if summary.model_uri:
    # Which digits the model gets wrong is not in what the Evaluator records:
    # the model is run on the test images once more for them.
    images, labels = idx.load(config.abs_data_dir, 'test')
    if config.max_test_examples:
      images, labels = (images[:config.max_test_examples],
                        labels[:config.max_test_examples])
    predicted = predict_test_set(
        os.path.join(summary.model_uri, 'Format-Serving'), images).argmax(-1)
    plot_misclassified(images, labels, predicted,
                       os.path.join(output_dir, 'misclassified.png'))
    pictures.append('misclassified.png')
  text = '\n'.join(format_summary(summary))
  with open(os.path.join(output_dir, 'summary.txt'), 'w') as f:
    f.write(text + '\n')
  with open(os.path.join(output_dir, 'index.html'), 'w') as f:
    f.write('<!DOCTYPE html><html><head><meta charset="utf-8">'
            '<title>MNIST pipeline run</title></head>'
            '<body style="font-family:sans-serif">'
            f'<h1>MNIST pipeline run</h1><pre>{html.escape(text)}</pre>' +
            ''.join(f'<p><img src="{p}" alt="{p}"></p>' for p in pictures) +
            '</body></html>')
  return output_dir
