"""`mnist-tfx serve`, `predict` and `requests`: the commands of serving/, registered
by main.py.

`serve` takes every flag of tensorflow_model_server, built from the one
ServerOptions (serving/options.py) with TF Serving's names, syntax and defaults, so
a TF Serving command line runs this server unchanged. Without a model base path or
config file it serves what the Pusher pushed (pipeline/config.py). `predict` sends
image files or IDX test images to a server. `requests` reads back the request logs
a model config's logging_config makes the server write.

They live in the CLI package, not in serving/, because they also read the
pipeline's configuration and its IDX files: serving/ itself imports nothing but
models/. TensorFlow and gRPC are imported inside the commands: `mnist-tfx --help`
stays fast.
"""

import dataclasses
import os
import sys
from typing import List, Optional, Sequence, Tuple

import click
import numpy as np

from components import idx
from models import serving_contract as contract
from pipeline import config as config_lib
from pipeline.cli import output_capture
from pipeline.cli.config_options import config_options
from pipeline.errors import UserError
from serving import options as options_lib


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


def _setup_logging(verbose: bool) -> None:
  import logging  # pylint: disable=g-import-not-at-top
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(message)s'))
  logger = logging.getLogger('serving')
  logger.addHandler(handler)
  logger.setLevel(logging.DEBUG if verbose else logging.INFO)
  logger.propagate = False


def _server_flags(command):
  """One option per ServerOptions field (serving/options.py), under TF Serving's
  name and with its default: `--flag=value`, and bare `--flag` for booleans."""
  for field in reversed(dataclasses.fields(options_lib.ServerOptions)):
    help_text = field.metadata['help']
    if not field.metadata['applicable']:
      help_text += ' Accepted and ignored.'
    if field.type is bool:
      kind = dict(type=click.BOOL, is_flag=False, flag_value=True,
                  default=field.default, metavar='true|false')
    elif field.default is dataclasses.MISSING:  # the repeatable list
      kind = dict(multiple=True, metavar='LABEL=VERSION')
    else:
      kind = dict(type=field.type, default=field.default)
    command = click.option(f'--{field.name}', field.name, help=help_text,
                           show_default=field.default not in ('', (), None),
                           **kind)(command)
  return command


@click.command()
@_server_flags
@click.option('--version', 'print_version', is_flag=True,
              help='Print the versions and exit, as tensorflow_model_server does.')
@click.option('--profile', type=click.Choice(sorted(config_lib.PROFILES)),
              default='full', show_default=True,
              help='Without --model_base_path/--model_config_file: the profile '
              'whose pushed model is served (as model --model_name, default '
              'the pipeline\'s model name).')
@click.option('--output-dir', 'output_dir', default=None,
              help='Pipeline output dir whose pushed model is served.')
@click.option('-v', '--verbose', is_flag=True,
              help='Log every request, and show TensorFlow\'s start-up lines.')
@click.pass_context
def serve(ctx, print_version, profile, output_dir, verbose, **flags):
  """Serve models over TF Serving's gRPC and REST APIs, with its flags.

  Every flag of tensorflow_model_server 2.21 is accepted with its syntax and
  default (REST only with --rest_api_port, batching only with --enable_batching).
  Without --model_base_path or --model_config_file the model the pipeline pushed is
  served.
  """
  if print_version:
    import pipeline  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    click.echo(f'TensorFlow ModelServer: mnist-tfx {pipeline.__version__} (a '
               f'stand-in for tensorflow_model_server)\nTensorFlow Library: '
               f'{tf.__version__}')
    return
  flags['version_label'] = list(flags['version_label'])
  options = options_lib.ServerOptions(**flags)
  for name in options.inapplicable():
    click.echo(f'warning: --{name} means nothing to this server '
               f'({options_lib.field_help(name)}); ignored', err=True)
  if not options.port and not options.grpc_socket_path:
    raise click.UsageError('At least one of --port or --grpc_socket_path must '
                           'be set')
  # TensorFlow's C++ start-up lines (oneDNN, CUDA probing) only with -v.
  if not verbose:
    output_capture.import_tensorflow_quietly()
  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format
  from serving import model_registry
  from serving import server as server_lib
  # pylint: enable=g-import-not-at-top
  # Every flag is checked before the models are looked for, as TF Serving does.
  try:
    server_lib.batching_parameters(options)
    policy = model_registry.VersionPolicy.parse(options.model_version_policy)
    labels = _version_labels(options.version_label)
  except (OSError, ValueError) as e:
    raise click.UsageError(str(e)) from e
  pushed_model = not (options.model_config_file or options.model_base_path)
  config = config_lib.load(profile)
  if output_dir:
    config = config.replace(output_dir=output_dir)
  if pushed_model and not os.path.isdir(config.model_base_path):
    raise UserError(f'no model pushed to {config.model_base_path}: run `mnist-tfx '
                    'run` first, or give --model_base_path')
  _setup_logging(verbose)
  try:
    if options.model_config_file:
      try:
        models = model_registry.read_model_config_file(options.model_config_file)
      except text_format.ParseError as e:
        # TF Serving's words for it (util/proto_util.h), which clients match on.
        click.echo('Error parsing text-format tensorflow.serving.ModelServerConfig: '
                   f'{e}', err=True)
        raise UserError(
            'Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf '
            f"file: '{options.model_config_file}'") from None
    else:
      name_given = (ctx.get_parameter_source('model_name') ==
                    click.core.ParameterSource.COMMANDLINE)
      models = [model_registry.ModelConfig(
          name=(options.model_name if name_given or not pushed_model
                else config.model_name),
          base_path=options.model_base_path or config.model_base_path,
          policy=policy, labels=labels)]
    server_lib.apply_thread_settings(options)
    if not verbose:
      output_capture.start_tensorflow_quietly()
    server = server_lib.ModelServer(models, options)
  except (OSError, ValueError) as e:
    raise click.UsageError(str(e)) from e
  try:
    server.start()
  except (OSError, ValueError) as e:
    raise UserError(f'Failed to start server. Error: {e}') from None
  for model in models:
    versions = sorted(server.registry.servables(model.name))
    click.echo(f'model {model.name}: versions {versions or "none yet"} from '
               f'{model.base_path} (policy {model.policy.kind})')
  for name, path, rate in server.registry.request_logger.destinations():
    click.echo(f'model {name}: requests logged to {path} (sampling rate '
               f'{rate:g})')
  if server.grpc_port:
    click.echo(f'gRPC API at {options.host}:{server.grpc_port}')
  if options.grpc_socket_path:
    click.echo(f'gRPC API at unix:{options.grpc_socket_path}')
  if server.rest_port:
    click.echo(f'REST API at http://{options.host}:{server.rest_port}/v1/models/'
               f'{models[0].name}')
  click.echo('batching: ' + (
      f'max_batch_size {server.registry.batching_params.max_batch_size}, '
      f'batch_timeout_micros {server.registry.batching_params.batch_timeout_micros}'
      if server.registry.batching_params else 'off'))
  sys.stdout.flush()
  server.serve_until_signal()
  click.echo('server stopped')


def _version_labels(assignments) -> dict:
  labels = {}
  for assignment in assignments:
    label, sep, version = assignment.partition('=')
    if not sep or not version.isdigit():
      raise click.BadParameter(f'{assignment!r}: expected LABEL=VERSION',
                               param_hint='--version_label')
    labels[label] = int(version)
  return labels


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
  from serving import client as client_lib  # pylint: disable=g-import-not-at-top
  from serving import mnist_inputs  # pylint: disable=g-import-not-at-top

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
  from serving import request_log_reader as reader  # pylint: disable=g-import-not-at-top

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
