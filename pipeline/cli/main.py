"""`mnist-tfx`: one command group for every user-facing action of the project.

The commands are in the modules beside this file, one per package they drive
(pipeline_commands.py, serving_commands.py, kubeflow_commands.py); this group
gathers them, adds `test` and `shell`, and turns a problem the user can put right
into one line on stderr.
"""

import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) says nothing useful.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import sys  # pylint: disable=g-import-not-at-top

import click

import pipeline as package
from components import idx
from pipeline import config as config_lib
from pipeline.errors import UserError


class _Commands(click.Group):
  """Every command: a problem the user can put right is one line on stderr, exit
  status 1 (2 for a wrong command line); a bug keeps its traceback."""

  def invoke(self, ctx):
    try:
      return super().invoke(ctx)
    except (UserError, idx.IdxFormatError) as e:
      raise click.ClickException(str(e)) from None

  def main(self, *args, **kwargs):
    try:
      code = super().main(*args, standalone_mode=False, **kwargs)
    except click.UsageError as e:
      hint = f' (see `{e.ctx.command_path} --help`)' if e.ctx else ''
      _fail(e.format_message() + hint, e.exit_code)
    except click.ClickException as e:
      _fail(e.format_message(), e.exit_code)
    except click.Abort:
      _fail('aborted', 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, status: int) -> None:
  click.echo('Error: ' + ' '.join(message.split()), err=True)
  sys.exit(status)


@click.group(cls=_Commands, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package.__version__, '-V', '--version', prog_name='mnist-tfx',
                      message='%(prog)s %(version)s')
def main():
  """MNIST on TensorFlow Extended: data, pipeline, serving and deployment."""


@main.command(context_settings={'ignore_unknown_options': True,
                               'help_option_names': []})
@click.argument('pytest_args', nargs=-1, type=click.UNPROCESSED)
def test(pytest_args):
  """Run the test suite of this checkout (pytest ARGS)."""
  if not os.path.isdir(os.path.join(config_lib.REPO_ROOT, 'tests')):
    raise click.ClickException(
        f'no tests/ in {config_lib.REPO_ROOT}: the tests run from a source checkout')
  os.chdir(config_lib.REPO_ROOT)
  os.execv(sys.executable, [sys.executable, '-m', 'pytest', *pytest_args])


@main.command(context_settings={'ignore_unknown_options': True,
                               'help_option_names': []})
@click.argument('bash_args', nargs=-1, type=click.UNPROCESSED)
def shell(bash_args):
  """A bash shell (or bash ARGS) with this environment's Python first on PATH."""
  bin_dir = os.path.dirname(sys.executable)
  os.environ['PATH'] = bin_dir + os.pathsep + os.environ.get('PATH', '')
  os.execvp('bash', ['bash', *bash_args])


def _register_package_commands():
  """run, report... (pipeline_commands.py), serve, predict, requests
  (serving_commands.py), compile (kubeflow_commands.py) and cluster
  (cluster_commands.py)."""
  # pylint: disable=g-import-not-at-top
  from pipeline.cli import cluster_commands
  from pipeline.cli import kubeflow_commands
  from pipeline.cli import pipeline_commands
  from pipeline.cli import serving_commands
  for command in (pipeline_commands.COMMANDS + serving_commands.COMMANDS +
                  kubeflow_commands.COMMANDS + cluster_commands.COMMANDS):
    main.add_command(command)


_register_package_commands()
