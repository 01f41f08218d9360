"""`python -m serving`: the model server's one entry point, with TF Serving's flags.

As tensorflow_model_server's main.cc: parse the flags into the options, build the
server, load the models, open the front ends, serve until SIGINT or SIGTERM.
`mnist-tfx serve` (pipeline/cli/serving_commands.py) is the same command with
the pipeline's pushed model as the default model; both call `check` and `serve`
below. What the process prints is what the tests and tools read: a line per
model, per request log, per front end, then `batching: ...` once it serves.
"""

import importlib.metadata
import logging
import sys
from typing import Any, List

import click

from serving.model_servers import flags as flags_lib
from serving.model_servers import options as options_lib
from serving.model_servers import tensorflow_startup

# The last line of the start-up report: the server answers from now on
# (process.py waits for it).
READY_LINE = 'batching: '


def check(options: options_lib.ServerOptions, verbose: bool) -> None:
  """Checks the flags that need TensorFlow's protos (batching parameters,
  version policy and labels) before any model is looked for, as TF Serving
  does; click.UsageError names what is wrong."""
  if not verbose:
    tensorflow_startup.import_tensorflow_quietly()
  from serving.model_servers import server as server_lib
  try:
    server_lib.batching_parameters(options)
    _single_model(options)
  except (OSError, ValueError) as e:
    raise click.UsageError(str(e)) from e


# TensorFlow (under tensorflow_serving's protos) is imported inside the functions,
# after check() imported it quietly: `--help` and a bad flag stay quick.
# pylint: disable=g-import-not-at-top


def _single_model(options: options_lib.ServerOptions):
  """The ModelConfig of --model_name and --model_base_path, with this server's
  own --model_version_policy and --version_label."""
  from serving.core import model_registry
  return model_registry.ModelConfig(
      name=options.model_name, base_path=options.model_base_path,
      policy=model_registry.VersionPolicy.parse(options.model_version_policy),
      labels=flags_lib.version_labels(options.version_label))


def _models(options: options_lib.ServerOptions) -> List[Any]:
  """The ModelConfigs of --model_config_file, or the one of --model_base_path."""
  from google.protobuf import text_format
  from serving.core import model_registry
  if not options.model_config_file:
    return [_single_model(options)]
  try:
    return model_registry.read_model_config_file(options.model_config_file)
  except text_format.ParseError as e:
    # TF Serving's words for it (util/proto_util.h), which clients match on.
    click.echo('Error parsing text-format tensorflow.serving.ModelServerConfig: '
               f'{e}', err=True)
    raise click.ClickException(
        'Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf '
        f"file: '{options.model_config_file}'") from None


def _setup_logging(verbose: bool) -> None:
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(message)s'))
  logger = logging.getLogger('serving')
  logger.addHandler(handler)
  logger.setLevel(logging.DEBUG if verbose else logging.INFO)
  logger.propagate = False


def serve(options: options_lib.ServerOptions, verbose: bool = False) -> None:
  """Loads the models, opens the front ends, prints where they are, and serves
  until SIGINT or SIGTERM. A problem with the flags or files is a
  click.UsageError, a failed start a click.ClickException (exit status 1)."""
  from serving.model_servers import server as server_lib
  _setup_logging(verbose)
  try:
    models = _models(options)
    server_lib.apply_thread_settings(options)
    if not verbose:
      tensorflow_startup.start_tensorflow_quietly()
    server = server_lib.ModelServer(models, options)
  except (OSError, ValueError) as e:
    raise click.UsageError(str(e)) from e
  try:
    server.start()
  except (OSError, ValueError) as e:
    raise click.ClickException(f'Failed to start server. Error: {e}') from None
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
  batching = server.batching_params
  click.echo(READY_LINE + (
      f'max_batch_size {batching.max_batch_size}, '
      f'batch_timeout_micros {batching.batch_timeout_micros}'
      if batching else 'off'))
  sys.stdout.flush()
  server.serve_until_signal()
  click.echo('server stopped')


def print_versions(server_version: str) -> None:
  """tensorflow_model_server --version: this server's, then TensorFlow's."""
  tensorflow_startup.import_tensorflow_quietly()
  import tensorflow as tf
  click.echo(f'TensorFlow ModelServer: {server_version} (a stand-in for '
             f'tensorflow_model_server)\nTensorFlow Library: {tf.__version__}')


def _installed_version() -> str:
  try:
    return f'mnist-tfx {importlib.metadata.version("mnist-tfx")}'
  except importlib.metadata.PackageNotFoundError:  # a source checkout
    return 'mnist-tfx'


@click.command(context_settings={'help_option_names': ['-h', '--help']})
@flags_lib.server_flags
def main(print_version: bool, verbose: bool, **flags) -> None:
  """Serve models over TF Serving's gRPC and REST APIs, with its flags.

  Every flag of tensorflow_model_server 2.21 is accepted with its syntax and
  default (REST only with --rest_api_port, batching only with
  --enable_batching).
  """
  if print_version:
    print_versions(_installed_version())
    return
  options = flags_lib.options_from_flags(flags)
  check(options, verbose)
  if not options.model_config_file and not options.model_base_path:
    # TF Serving's words (model_servers/server.cc).
    raise click.UsageError('Both server_options.model_base_path and '
                           'server_options.model_config_file are empty!')
  serve(options, verbose)
