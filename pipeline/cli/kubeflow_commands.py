"""`mnist-tfx compile`: the pipeline as a Kubeflow Pipelines spec, and TF Serving's
manifests for the same model base path; the command of kubeflow/, registered by
main.py (the CLI imports kubeflow/, which imports the pipeline, never the CLI)."""

import os

import click

from pipeline.cli import output_capture
from pipeline.cli.config_options import config_options


@click.command('compile')
@config_options
@click.option('--output', default=None,
              help='Pipeline spec to write: .yaml for Kubeflow Pipelines, .json '
              'for a Vertex AI PipelineJob (default: '
              '<output-dir>/kubeflow/<pipeline-name>.yaml).')
@output_capture.quiet_tensorflow
def compile_command(config, output):
  """Compile the pipeline for Kubeflow Pipelines (KubeflowV2DagRunner).

  Cluster settings are fields of config.kubeflow, set with --set kubeflow.NAME=VALUE:
  image, pipeline_root, serving_root and data_dir are required. Also writes
  kubeflow-serving.yaml (TF Serving reading what the Pusher pushes) and
  kserve-inferenceservice.yaml (the same through KServe) beside the spec, and
  with kubeflow.beam.runner=flink kubeflow-flink.yaml (a Flink session cluster
  and Beam's job server at the Beam steps' job_endpoint and worker_pool).
  """
  # pylint: disable=g-import-not-at-top
  import logging
  from kubeflow import flink
  from kubeflow import manifests
  from kubeflow import runner
  # TFX's compile-time deprecation warnings say nothing a user can act on.
  logging.getLogger('absl').setLevel(logging.ERROR)
  output = output or runner.default_output_path(config)
  try:
    # The Flink manifests are rendered first, so that settings they cannot
    # answer leave nothing written.
    runner.check(config)
    flink_cluster = (flink.render(config)
                     if config.kubeflow.beam.runner == 'flink' else None)
    job = runner.compile_pipeline(config, output)
  except (runner.KubeflowConfigError, manifests.ManifestError) as e:
    raise click.UsageError(str(e)) from e
  serving = os.path.join(os.path.dirname(os.path.abspath(output)),
                         'kubeflow-serving.yaml')
  manifests.write(manifests.render(config), serving)
  inference_service = os.path.join(os.path.dirname(os.path.abspath(output)),
                                   'kserve-inferenceservice.yaml')
  try:
    manifests.write([manifests.render_inference_service(config)],
                    inference_service, source='kubeflow/manifests.py (KServe)')
  except manifests.ManifestError as e:
    raise click.UsageError(str(e)) from e
  if flink_cluster:
    flink_path = os.path.join(os.path.dirname(os.path.abspath(output)),
                              'kubeflow-flink.yaml')
    manifests.write(flink_cluster, flink_path, source='kubeflow/flink.yaml',
                    what='The Beam steps\' Flink session cluster')
  tasks = job['pipelineSpec']['root']['dag']['tasks']
  click.echo(f'pipeline spec: {output} ({len(tasks)} tasks, image '
             f'{config.kubeflow.image}, root {config.kubeflow.pipeline_root})')
  click.echo(f'TF Serving manifests: {serving} (model base path '
             f'{manifests.model_base_path(config)})')
  click.echo(f'KServe InferenceService: {inference_service} (storageUri '
             f'{manifests.storage_uri(config)})')
  if flink_cluster:
    click.echo(f'Flink session cluster: {flink_path} (FlinkDeployment '
               f'{flink.cluster_name(config)}, job server '
               f'{config.kubeflow.beam.job_endpoint})')


COMMANDS = [compile_command]
