"""tensorflow_model_server's command line: one click option per ServerOptions field.

TF Serving's main.cc binds each flag straight into a field of Server::Options;
here each field of `ServerOptions` (options.py) becomes an option under its name
and with its default, `--flag=value` and bare `--flag` for booleans, so a TF
Serving command line runs unchanged. `python -m serving` (main.py) and
`mnist-tfx serve` (pipeline/cli/serving_commands.py) both take these flags and
both turn them into options with `options_from_flags`, which checks every flag
before any model is looked for, as TF Serving does.
"""

import dataclasses
from typing import Any, Dict, Iterable

import click

from serving.model_servers import options as options_lib


def server_flags(command):
  """Adds TF Serving's flags, its --version, and -v (log every request, let
  TensorFlow's C++ start-up lines through) to a click command; the command gets
  `print_version`, `verbose` and one keyword per ServerOptions field."""
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
  command = click.option(
      '--version', 'print_version', is_flag=True,
      help='Print the versions and exit, as tensorflow_model_server does.'
  )(command)
  return click.option(
      '-v', '--verbose', is_flag=True,
      help="Log every request, and show TensorFlow's start-up lines.")(command)


def version_labels(assignments: Iterable[str]) -> Dict[str, int]:
  """--version_label LABEL=VERSION (repeatable) as {label: version}."""
  labels = {}
  for assignment in assignments:
    label, sep, version = assignment.partition('=')
    if not sep or not version.isdigit():
      raise click.BadParameter(f'{assignment!r}: expected LABEL=VERSION',
                               param_hint='--version_label')
    labels[label] = int(version)
  return labels


def options_from_flags(flags: Dict[str, Any]) -> options_lib.ServerOptions:
  """The ServerOptions of parsed flags, checked: a warning line for each flag
  that means nothing here, click.UsageError for a flag that cannot work."""
  flags = dict(flags, version_label=list(flags['version_label']))
  options = options_lib.ServerOptions(**flags)
  for name in options.inapplicable():
    click.echo(f'warning: --{name} means nothing to this server '
               f'({options_lib.field_help(name)}); ignored', err=True)
  if not options.port and not options.grpc_socket_path:
    raise click.UsageError('At least one of --port or --grpc_socket_path must '
                           'be set')
  return options
