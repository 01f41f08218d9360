"""Options shared by the commands that act on a pipeline configuration.

In a module of its own, which main.py does not import, so that each command module
(pipeline_commands.py, serving_commands.py, kubeflow_commands.py) can use it
without importing the group that registers them.
"""

import functools

import click

from pipeline import config as config_lib


def config_options(command):
  """--profile, --set, --data-dir and --output-dir, resolved into a PipelineConfig."""

  @click.option('--profile', type=click.Choice(sorted(config_lib.PROFILES)),
                default='full', show_default=True,
                help='Named configuration (pipeline/config.py).')
  @click.option('--set', 'overrides', multiple=True, metavar='NAME=VALUE',
                help='Override one PipelineConfig field; repeatable.')
  @click.option('--data-dir', default=None,
                help='Directory of the four MNIST IDX files, raw or .gz.')
  @click.option('--output-dir', default=None,
                help='Where pipeline outputs, metadata and models go.')
  @functools.wraps(command)
  def wrapper(profile, overrides, data_dir, output_dir, **kwargs):
    config = config_lib.load(profile)
    for assignment in overrides:
      try:
        config = config_lib.apply_override(config, assignment)
      except ValueError as e:
        raise click.BadParameter(str(e), param_hint='--set') from e
    changes = {}
    if data_dir:
      changes['data_dir'] = data_dir
    if output_dir:
      changes['output_dir'] = output_dir
    return command(config.replace(**changes), **kwargs)

  return wrapper
