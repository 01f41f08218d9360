"""`mnist-tfx serve` and `mnist-tfx predict` (registered by pipeline/cli.py).

`serve` takes tensorflow_model_server's flags, same names and syntax (--port,
--rest_api_port, --model_name, --model_base_path, --model_config_file,
--enable_batching, --batching_parameters_file, --file_system_poll_wait_seconds,
...), so a TF Serving command line using them runs this server unchanged. Defaults come from
pipeline/config.py: the model the Pusher pushes, under the profile's output dir.

TensorFlow and gRPC are imported inside the commands: `mnist-tfx --help` stays fast.
"""

import os
import sys
from typing import List, Optional

import click

from pipeline import config as config_lib
from pipeline import output_capture
from pipeline.errors import UserError

_BOOL = dict(type=click.BOOL, is_flag=False, flag_value=True, show_default=True,
             metavar='BOOL')


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


@click.command()
@click.option('--port', type=int, default=8500, show_default=True,
              help='gRPC port (0: no gRPC API).')
@click.option('--rest_api_port', type=int, default=8501, show_default=True,
              help='REST port (0: no REST API).')
@click.option('--host', default='0.0.0.0', show_default=True,
              help='Address to bind; 127.0.0.1 keeps the server local.')
@click.option('--model_name', default=None,
              help='Model name clients ask for (default: config model_name).')
@click.option('--model_base_path', default=None,
              help='Folder of numbered version folders (default: where the '
                   'Pusher pushes, <output-dir>/serving/<model_name>).')
@click.option('--model_config_file', default=None, type=click.Path(exists=True),
              help="TF Serving's text ModelServerConfig (several models, "
                   'version policies, labels); replaces --model_name/base path.')
@click.option('--model_version_policy', default='latest', show_default=True,
              help='latest[:N], all or specific:V1,V2 (TF Serving sets this in '
                   'the model config file).')
@click.option('--version_label', 'version_labels', multiple=True,
              metavar='LABEL=VERSION',
              help='Name a version (e.g. stable=3); repeatable.')
@click.option('--enable_batching', default=True, help='Batch concurrent requests.',
              **_BOOL)
@click.option('--batching_parameters_file', default=None,
              type=click.Path(exists=True),
              help="TF Serving's BatchingParameters text file "
                   '(see serving/batching_parameters.txt).')
@click.option('--file_system_poll_wait_seconds', type=float, default=1.0,
              show_default=True,
              help='How often to look for new versions (0: only at start).')
@click.option('--max_num_load_retries', type=int, default=5, show_default=True)
@click.option('--enable_model_warmup', default=True, **_BOOL)
@click.option('--grpc_max_threads', type=int, default=64, show_default=True,
              help='gRPC request threads: the most requests in flight, and so '
                   'the largest batch concurrent requests can form.')
@click.option('--enable_signature_method_name_check', default=False, **_BOOL)
@click.option('--tensorflow_intra_op_parallelism', type=int, default=1,
              show_default=True,
              help='Threads per op; 0: TensorFlow picks (one per core). 1 '
                   'measured best here: Python request handling needs a core, '
                   'and batches run in parallel (num_batch_threads) instead.')
@click.option('--tensorflow_inter_op_parallelism', type=int, default=1,
              show_default=True,
              help='Ops of one call run at once; 0: TensorFlow picks.')
@click.option('--max_message_bytes', type=int, default=64 << 20,
              show_default=True, help='Largest request accepted (gRPC and REST).')
@click.option('--profile', type=click.Choice(sorted(config_lib.PROFILES)),
              default='full', show_default=True,
              help='Configuration whose pushed model is served by default.')
@click.option('--output-dir', 'output_dir', default=None,
              help='Pipeline output dir whose pushed model is served.')
@click.option('-v', '--verbose', is_flag=True, help='Log every request.')
def serve(port, rest_api_port, host, model_name, model_base_path,
          model_config_file, model_version_policy, version_labels,
          enable_batching, batching_parameters_file,
          file_system_poll_wait_seconds, max_num_load_retries,
          enable_model_warmup, grpc_max_threads,
          enable_signature_method_name_check, tensorflow_intra_op_parallelism,
          tensorflow_inter_op_parallelism, max_message_bytes, profile,
          output_dir, verbose):
  """Serve pushed models over TF Serving's gRPC and REST APIs."""
  if not port and not rest_api_port:
    raise click.UsageError('--port and --rest_api_port are both 0: nothing to serve')
  config = config_lib.load(profile)
  if output_dir:
    config = config.replace(output_dir=output_dir)
  output_capture.import_tensorflow_quietly()
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from serving import batching
  from serving import model_registry
  from serving import server as server_lib
  # pylint: enable=g-import-not-at-top
  _setup_logging(verbose)
  try:
    if model_config_file:
      models = model_registry.read_model_config_file(model_config_file)
    else:
      labels = {}
      for assignment in version_labels:
        label, sep, version = assignment.partition('=')
        if not sep or not version.isdigit():
          raise click.BadParameter(f'{assignment!r}: expected LABEL=VERSION',
                                   param_hint='--version_label')
        labels[label] = int(version)
      models = [model_registry.ModelConfig(
          name=model_name or config.model_name,
          base_path=model_base_path or config.model_base_path,
          policy=model_registry.VersionPolicy.parse(model_version_policy),
          labels=labels)]
    params = None
    if enable_batching:
      params = (batching.load_batching_parameters(batching_parameters_file)
                if batching_parameters_file else batching.BatchingParameters())
  except (OSError, ValueError) as e:
    raise click.UsageError(str(e)) from e
  if not (model_config_file or model_base_path or
          os.path.isdir(config.model_base_path)):
    # A path the user gives is served as TF Serving would: waiting for versions.
    # The default is the Pusher's destination: nothing there means no run yet.
    raise UserError(f'no model pushed to {config.model_base_path}: run `mnist-tfx '
                    'run` first, or give --model_base_path')

  options = server_lib.ServerOptions(
      host=host, grpc_port=port or None, rest_port=rest_api_port or None,
      batching=params, poll_seconds=file_system_poll_wait_seconds,
      max_load_retries=max_num_load_retries, enable_warmup=enable_model_warmup,
      max_message_bytes=max_message_bytes, grpc_max_threads=grpc_max_threads,
      signature_method_name_check=enable_signature_method_name_check)
  try:
    # Before any model is loaded: TensorFlow fixes its thread pools on first use.
    tf.config.threading.set_intra_op_parallelism_threads(
        tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(
        tensorflow_inter_op_parallelism)
  except RuntimeError as e:  # TensorFlow already ran in this process.
    click.secho(f'keeping TensorFlow\'s thread pools: {e}', fg='yellow', err=True)
  server = server_lib.ModelServer(models, options)
  try:
    server.start()
  except OSError as e:
    click.secho(f'cannot start the server: {e}', fg='red', err=True)
    sys.exit(1)
  for model in models:
    versions = sorted(server.registry.servables(model.name))
    click.echo(f'model {model.name}: versions {versions or "none yet"} from '
               f'{model.base_path} (policy {model.policy.kind})')
  if server.grpc_port:
    click.echo(f'gRPC API at {host}:{server.grpc_port}')
  if server.rest_port:
    click.echo(f'REST API at http://{host}:{server.rest_port}/v1/models/'
               f'{models[0].name}')
  click.echo('batching: ' + (f'max_batch_size {params.max_batch_size}, '
                             f'batch_timeout_micros {params.batch_timeout_micros}'
                             if params else 'off'))
  sys.stdout.flush()
  server.serve_until_signal()
  click.echo('server stopped')


@click.command()
@click.argument('image_files', nargs=-1,
                type=click.Path(exists=True, dir_okay=False))
@click.option('--index', 'index_specs', multiple=True, metavar='N[,M|-M]',
              help='Images of the IDX test set by index (3, 0,5 or 10-19); '
                   'repeatable.')
@click.option('--server', 'target', default=None,
              help='host:port (default localhost:8500 for gRPC, '
                   'localhost:8501 for REST).')
@click.option('--protocol', type=click.Choice(['grpc', 'rest']), default='grpc',
              show_default=True)
@click.option('--model_name', default=None,
              help='Default: config model_name.')
@click.option('--model_version', type=int, default=None,
              help='Ask for this version (default: the latest served).')
@click.option('--version_label', default=None, help='Ask for a labelled version.')
@click.option('--signature_name',
              type=click.Choice(['serving_default', 'predict_images']),
              default='serving_default', show_default=True,
              help='serving_default sends tf.Examples, predict_images floats.')
@click.option('--data-dir', 'data_dir', default=None,
              help='IDX files for --index (default: the config data dir).')
@click.option('--timeout', type=float, default=10.0, show_default=True)
@output_capture.quiet_tensorflow
def predict(image_files, index_specs, target, protocol, model_name,
            model_version, version_label, signature_name, data_dir, timeout):
  """Classify digit images (PNG/JPEG files or IDX test images) on a server."""
  import numpy as np  # pylint: disable=g-import-not-at-top
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
      images, true_labels = mnist_inputs.load_test_images(directory, indexes)
    except (OSError, ValueError, IndexError) as e:
      raise click.BadParameter(str(e), param_hint='--index') from e
    rows.extend(images)
    sources.extend(f'test[{i}]' for i in indexes)
    labels.extend(int(label) for label in true_labels)

  target = target or ('localhost:8500' if protocol == 'grpc' else 'localhost:8501')
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


COMMANDS = [serve, predict]
