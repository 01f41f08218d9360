"""`mnist-tfx cluster up|down|status flink|spark`: a Flink or Spark cluster on this
machine for the pipeline's Beam steps (pipeline/clusters/, docs/scale-out.md).

`./mnist-tfx cluster up` fetches the engine first (tools/engines.sh, on the
host); then `mnist-tfx run --set beam.runner=flink` sends the Beam steps there.
"""

import os

import click

from pipeline.clusters import flink
from pipeline.clusters import local
from pipeline.clusters import spark

ENGINES = {'flink': flink, 'spark': spark}


def _directory(engine: str, directory: str) -> str:
  return os.path.abspath(directory or os.path.join('outputs', 'clusters', engine))


@click.group()
def cluster():
  """Start, stop or inspect a Flink or Spark cluster on this machine."""


@cluster.command()
@click.argument('engine', type=click.Choice(sorted(ENGINES)))
@click.option('--workers', default=2, show_default=True,
              help='TaskManagers (Flink) or workers (Spark), each with its own '
              'Beam worker pool.')
@click.option('--dir', 'directory', default=None,
              help='Where its configuration, pids and logs go '
              '[default: outputs/clusters/ENGINE].')
def up(engine, workers, directory):
  """Start ENGINE: a master, workers, their worker pools and Beam's job server."""
  directory = _directory(engine, directory)
  module = ENGINES[engine]
  if local.State.load(directory):
    raise click.ClickException(
        f'a {engine} cluster is already running from {directory}: '
        f'./mnist-tfx cluster down {engine} first')
  ports = getattr(module, 'DEFAULT_PORTS', local.Ports())
  try:
    state = module.up(directory, ports, workers, say=click.echo)
  except local.ClusterError:
    module.down(directory, say=lambda _: None)  # what did start, stops
    raise
  click.echo(f'run the Beam steps there: ./mnist-tfx run --set beam.runner={engine}'
             + ('' if state.job_endpoint == 'localhost:8099' else
                f' --set beam.job_endpoint={state.job_endpoint}'))


@cluster.command()
@click.argument('engine', type=click.Choice(sorted(ENGINES)))
@click.option('--dir', 'directory', default=None,
              help='The directory `up` used [default: outputs/clusters/ENGINE].')
def down(engine, directory):
  """Stop the ENGINE cluster `up` started."""
  directory = _directory(engine, directory)
  if not ENGINES[engine].down(directory, say=click.echo):
    click.echo(f'no {engine} cluster was started from {directory}')


@cluster.command()
@click.argument('engine', type=click.Choice(sorted(ENGINES)))
@click.option('--dir', 'directory', default=None,
              help='The directory `up` used [default: outputs/clusters/ENGINE].')
def status(engine, directory):
  """What runs of the ENGINE cluster, and the Beam jobs it ran."""
  directory = _directory(engine, directory)
  state = local.State.load(directory)
  if state is None:
    raise click.ClickException(
        f'no {engine} cluster was started from {directory}: '
        f'./mnist-tfx cluster up {engine}')
  for name, pid in sorted(state.pids.items()):
    click.echo(f'{name}: pid {pid} {"running" if local.alive(pid) else "stopped"}')
  if engine == 'flink':
    finished = flink.jobs(state)
    click.echo(f'Flink at {state.ui_url}: {len(flink.task_manager_pids(state))} '
               f'TaskManagers, {len(finished)} jobs')
    for job in finished:
      click.echo(f'  {job["name"]}: {job["state"]}, {job["duration"] / 1000:.1f} s')
  else:
    apps = spark.applications(state)
    click.echo(f'Spark at {state.ui_url}: {len(spark.alive_workers(state))} '
               f'workers alive, {len(apps)} applications')
    for app in apps:
      click.echo(f'  {app["name"]}: {app["state"]}, {app["duration"] / 1000:.1f} s')
  click.echo(f'Beam job server: {state.job_endpoint}')


COMMANDS = [cluster]
