"""`mnist-tfx serve`, `predict` and `requests`: the commands of serving, registered
by main.py.

`serve` is `python -m serving` (serving/model_servers/main.py: every flag of
tensorflow_model_server, from the one ServerOptions) with one addition: without a
model base path or config file it serves what the Pusher pushed
(pipeline/config.py). `predict` sends image files or IDX test images to a server
(pipeline/client.py). `requests` reads back the request logs a model config's
logging_config makes the server write (pipeline/reports/request_log_report.py).

They live in the CLI package, not in serving/, because they also read the
pipeline's configuration and its IDX files: serving/ itself imports nothing but
models/. TensorFlow and gRPC are imported inside the commands: `mnist-tfx --help`
stays fast.
"""

import dataclasses
import os
from typing import List, Optional, Sequence, Tuple

import click
import numpy as np

from components import idx
from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline.cli import output_capture
from pipeline.cli.config_options import config_options
from pipeline.errors import UserError
from serving.model_servers import flags as serving_flags
from serving.model_servers import options as options_lib


def _parse_indexes(specs) -> List[int]:
  """'3', '0,5' and '10-19' (inclusive) -> a list of indexes."""
  indexes = []
  for spec in specs:
    for part in spec.split(','):
      part = part.strip()
      if not part:
        continue
      first, sep, last = part.partition('-')
      try:
        if sep:
          indexes.extend(range(int(first), int(last) + 1))
        else:
          indexes.append(int(part))
      except ValueError:
        raise click.BadParameter(
            f'{part!r}: expected N, N,M or N-M', param_hint='--index') from None
  return indexes


@click.command()
@serving_flags.server_flags
@click.option('--profile', type=click.Choice(sorted(config_lib.PROFILES)),
              default='full', show_default=True,
              help='Without --model_base_path/--model_config_file: the profile '
              'whose pushed model is served (as model --model_name, default '
              'the pipeline\'s model name).')
@click.option('--output-dir', 'output_dir', default=None,
              help='Pipeline output dir whose pushed model is served.')
@click.pass_context
def serve(ctx, print_version, verbose, profile, output_dir, **flags):
  """Serve models over TF Serving's gRPC and REST APIs, with its flags.

  `python -m serving` with the pipeline's pushed model as the default: every
  flag of tensorflow_model_server 2.21 is accepted with its syntax and default
  (REST only with --rest_api_port, batching only with --enable_batching).
  Without --model_base_path or --model_config_file the model the pipeline pushed
  is served.
  """
  from serving.model_servers import main as server_main  # pylint: disable=g-import-not-at-top
  if print_version:
    import pipeline  # pylint: disable=g-import-not-at-top
    server_main.print_versions(f'mnist-tfx {pipeline.__version__}')
    return
  options = serving_flags.options_from_flags(flags)
  server_main.check(options, verbose)
  if not (options.model_config_file or options.model_base_path):
    config = config_lib.load(profile)
    if output_dir:
      config = config.replace(output_dir=output_dir)
    if not os.path.isdir(config.model_base_path):
      raise UserError(f'no model pushed to {config.model_base_path}: run '
                      '`mnist-tfx run` first, or give --model_base_path')
    name_given = (ctx.get_parameter_source('model_name') ==
                  click.core.ParameterSource.COMMANDLINE)
    options = dataclasses.replace(
        options, model_base_path=config.model_base_path,
        model_name=options.model_name if name_given else config.model_name)
  server_main.serve(options, verbose)


@click.command()
@click.argument('image_files', nargs=-1,
                type=click.Path(exists=True, dir_okay=False))
@click.option('--index', 'index_specs', multiple=True, metavar='N[,M|-M]',
              help='Images of the IDX test set by index (3, 0,5 or 10-19); '
                   'repeatable.')
@click.option('--server', 'target', default=None,
              help='host:port (default localhost:'
                   f'{options_lib.ServerOptions.port} for gRPC, localhost:'
                   f'{options_lib.DOCKER_REST_API_PORT} for REST).')
@click.option('--protocol', type=click.Choice(['grpc', 'rest']), default='grpc',
              show_default=True)
@click.option('--model_name', default=None,
              help='Default: config model_name.')
@click.option('--model_version', type=int, default=None,
              help='Ask for this version (default: the latest served).')
@click.option('--version_label', default=None, help='Ask for a labelled version.')
@click.option('--signature_name',
              type=click.Choice(contract.PREDICT_SIGNATURES),
              default=contract.DEFAULT_SIGNATURE, show_default=True,
              help=f'{contract.DEFAULT_SIGNATURE} sends tf.Examples, '
                   f'{contract.IMAGES_SIGNATURE} floats.')
@click.option('--data-dir', 'data_dir', default=None,
              help='IDX files for --index (default: the config data dir).')
@click.option('--timeout', type=float, default=10.0, show_default=True)
@output_capture.quiet_tensorflow
def predict(image_files, index_specs, target, protocol, model_name,
            model_version, version_label, signature_name, data_dir, timeout):
  """Classify digit images (PNG/JPEG files or IDX test images) on a server."""
  from pipeline import client as client_lib  # pylint: disable=g-import-not-at-top
  from pipeline import mnist_inputs  # pylint: disable=g-import-not-at-top

  indexes = _parse_indexes(index_specs)
  if not image_files and not indexes:
    raise click.UsageError('give image files and/or --index N')
  config = config_lib.load()
  sources: List[str] = []
  labels: List[Optional[int]] = []
  rows = []
  for path in image_files:
    try:
      rows.append(mnist_inputs.load_image_file(path))
    except (OSError, ValueError) as e:
      raise click.BadParameter(f'{path}: {e}', param_hint='IMAGE_FILES') from e
    sources.append(path)
    labels.append(None)
  if indexes:
    directory = data_dir or config.abs_data_dir
    try:
      images, true_labels = _test_images(directory, indexes)
    except (OSError, ValueError, IndexError) as e:
      raise click.BadParameter(str(e), param_hint='--index') from e
    rows.extend(images)
    sources.extend(f'test[{i}]' for i in indexes)
    labels.extend(int(label) for label in true_labels)

  target = target or client_lib.default_target(protocol)
  with client_lib.connect(target, protocol, model_name or config.model_name,
                          timeout) as client:
    try:
      result = client.predict(np.stack(rows), signature_name, model_version,
                              version_label)
    except client_lib.RequestError as e:
      if e.code == 'UNAVAILABLE':
        raise UserError(
            f'no model server answers at {target} ({protocol}): start one with '
            '`mnist-tfx serve`, or give --server HOST:PORT') from None
      raise UserError(f'request failed: {e}') from None

  version = (f'version {result.model_version}' if result.model_version
             else 'latest version')
  click.echo(f'{model_name or config.model_name} ({version}, signature '
             f'{signature_name}) at {target} over {protocol}')
  width = max(len(s) for s in sources + ['image'])
  click.echo(f'{"image":<{width}}  label  digit  p(digit)  ' +
             ' '.join(f'{d:>5}' for d in range(10)))
  for source, label, digit, probabilities in zip(
      sources, labels, result.digits, result.probabilities):
    label_text = '-' if label is None else str(label)
    click.echo(f'{source:<{width}}  {label_text:>5}  {int(digit):>5}  '
               f'{float(probabilities[digit]):>8.3f}  ' +
               ' '.join(f'{float(p):5.3f}' for p in probabilities))
  if any(label is not None for label in labels):
    known = [(l, d) for l, d in zip(labels, result.digits) if l is not None]
    correct = sum(int(l == d) for l, d in known)
    click.echo(f'{correct}/{len(known)} test images classified correctly')


def _test_images(data_dir: str,
                 indexes: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 784], labels [N]) of the IDX test set at `indexes`."""
  images, labels = idx.load(data_dir, 'test')
  bad = [i for i in indexes if not 0 <= i < len(images)]
  if bad:
    raise IndexError(
        f'test set index {bad[0]} out of range: {data_dir} holds '
        f'{len(images)} test images')
  indexes = list(indexes)
  return images[indexes], labels[indexes]


@click.command()
@click.argument('logs', nargs=-1, required=True, metavar='LOG_PREFIX_OR_FILES...')
@config_options
@click.option('--output', 'output', default=None,
              help='Folder for the pictures (default: <output-dir>/reports/'
              'requests).')
@click.option('--samples', type=click.IntRange(1, 600), default=48,
              show_default=True, help='Logged digits drawn in the sample grid.')
@click.option('--seed', type=int, default=0, show_default=True,
              help='Seed of the sample drawn.')
@click.pass_context
@output_capture.quiet_tensorflow
def requests(ctx, config, logs, output, samples, seed):
  """Read request logs (PredictionLog TFRecords) back: counts, digits, pictures.

  LOG_PREFIX_OR_FILES: a logging_config filename_prefix (its files
  <prefix>*.tfrecord), folders, files or glob patterns. Prints the requests by API
  and signature, the images seen and the predicted-digit distribution next to
  the training labels' (IDX files of --data-dir), and draws a sample of the logged
  digits and the distribution as PNG files.
  """
  from pipeline.reports import request_log_report as reader  # pylint: disable=g-import-not-at-top

  try:
    paths = reader.find_files(logs)
    summary = reader.summarize(paths, sample_size=samples, seed=seed)
  except reader.RequestLogError as e:
    raise UserError(str(e)) from None
  train_counts = None
  try:
    train_counts = np.bincount(idx.load_labels(config.abs_data_dir, 'train'),
                               minlength=reader.NUM_CLASSES)
  except idx.IdxFormatError as e:
    if ctx.get_parameter_source('data_dir') == (
        click.core.ParameterSource.COMMANDLINE):
      raise UserError(f'training labels: {e}') from None
    missing_note = (f'training labels: none in {config.abs_data_dir} (give '
                    '--data-dir)')
  for line in reader.report_lines(summary, train_counts):
    click.echo(line)
  if train_counts is None:
    click.echo(missing_note)
  directory = output or os.path.join(config.reports_dir, 'requests')
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise UserError(f'cannot write pictures to {directory}: {e}') from None
  pictures = []
  if summary.sample_images:
    path = os.path.join(directory, reader.DIGITS_PICTURE)
    reader.plot_sample(summary, path)
    pictures.append(f'sample of {len(summary.sample_images)} logged digits: '
                    f'{path}')
  path = os.path.join(directory, reader.DISTRIBUTION_PICTURE)
  reader.plot_distribution(summary, train_counts, path)
  pictures.append(f'digit distribution chart: {path}')
  for line in pictures:
    click.echo(line)


COMMANDS = [serve, predict, requests]
