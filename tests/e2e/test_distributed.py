"""The pipeline scaled out: the Beam steps on a real Flink and Spark cluster, the
Trainer on several worker processes.

The Flink and Spark tests start a cluster of separate JVMs on this machine
(pipeline/clusters/: a master, two workers, a Beam worker pool beside each, Beam's
job server), run the smoke profile with its Beam steps there, and compare what
the steps wrote with the shared smoke run's (the DirectRunner): the same
examples in every split, the same statistics, the same transformed examples.
The engine's own REST API must list the jobs, and each worker's pool must have
served them. The Flink test also loses a TaskManager in the middle of a step.

`training.workers=2` trains the shared smoke run's recipe under
MultiWorkerMirroredStrategy on two worker processes of this machine, on loopback,
each with its own TF_CONFIG (models/trainer/multi_worker.py), as a cluster's worker
pool runs them. The rest of the pipeline then judges, validates and pushes that
model as any other.
"""

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from components import atomic_pusher
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import mlmd
from pipeline.clusters import flink
from pipeline.clusters import local
from pipeline.clusters import spark
from pipeline.reports import run_report
from serving.model_servers import process as process_lib
from tests.testutil import beam_outputs
from tests.testutil.pipeline_runs import changed_in_place

pytestmark = pytest.mark.distributed


def test_multi_worker_training_is_blessed_validated_and_pushed(smoke_pipeline):
  config = smoke_pipeline
  single = run_report.summarize(config)
  # Half the batch on each of the two workers: the same global batch, steps and
  # recipe as the single-process run.
  training = dataclasses.replace(config.training, workers=2,
                                 batch_size=config.training.batch_size // 2)
  # Within seed noise of the single-process model on 500 test images, not the
  # production bar of 0.1%.
  multi = config.replace(training=training, evaluation=config_lib.EvaluationConfig(
      min_accuracy=config.evaluation.min_accuracy, max_accuracy_drop=0.05))
  with changed_in_place(multi):
    local_runner.run(multi, out=lambda line: None)
    summary = run_report.summarize(multi)
    assert summary.evaluation.blessed, summary.evaluation.failures
    assert summary.evaluation.candidate == pytest.approx(
        single.evaluation.candidate, abs=0.05)
    # The model server answered every signature of it (InfraValidator).
    assert summary.infra_validation.blessed, summary.infra_validation.reason
    assert summary.pushed and summary.pushed_version == '2'
    assert atomic_pusher.versions(multi.model_base_path) == [1, 2]

    # Both workers took part: each trained every epoch in a two-process cluster,
    # and the chief's record says so.
    run_dir = dict(dict((n.node_id, n) for n in mlmd.latest_run(multi))[
        'Trainer'].outputs)['model_run'].uri
    with open(os.path.join(run_dir, 'history.json')) as f:
      history = json.load(f)
    assert (history['workers'], history['replicas']) == (2, 2)
    for index in (0, 1):
      with open(os.path.join(run_dir, 'workers', f'worker-{index}.log')) as f:
        log = f.read()
      assert re.search(rf'Training as worker {index} of a 2-process cluster', log)
      assert f'Epoch {training.epochs}/{training.epochs}:' in log, log[-3000:]


# --- the Beam steps on Flink and Spark ---------------------------------------------

ENGINES = {'flink': flink, 'spark': spark}
BEAM_STEPS = ('IdxExampleGen', 'StatisticsGen', 'Transform', 'Evaluator')


def _require_engine(engine: str) -> None:
  """The engine fetched (./mnist-tfx test fetches it where Java and Maven are)
  and Java; in CI a missing one fails instead of skipping."""
  module = ENGINES[engine]
  try:
    module.job_server_home()
    getattr(module, f'{engine}_home')()
    local.java_home()
  except local.ClusterError as e:
    if os.environ.get('CI'):
      pytest.fail(str(e))
    pytest.skip(str(e))


@contextlib.contextmanager
def _cluster(engine: str, directory: str):
  """The engine's cluster on free ports, stopped afterwards whatever happens."""
  _require_engine(engine)
  free_port = process_lib.free_port
  ports = local.Ports(job=free_port(), artifact=free_port(), ui=free_port(),
                      master=free_port(), pool=free_port())
  try:
    yield ENGINES[engine].up(directory, ports, workers=2, say=lambda _: None)
  finally:
    ENGINES[engine].down(directory, say=lambda _: None)


def _on_cluster(direct: config_lib.PipelineConfig, state: local.State,
                output_dir: str) -> config_lib.PipelineConfig:
  beam = config_lib.BeamConfig(runner=state.engine,
                               job_endpoint=state.job_endpoint,
                               worker_pool=state.worker_pool, parallelism=2)
  return direct.replace(output_dir=output_dir, beam=beam)


def _cli_run(config: config_lib.PipelineConfig) -> subprocess.Popen:
  """`mnist-tfx run` with the config's Beam settings, as a user starts it."""
  beam = config.beam
  return subprocess.Popen(
      [sys.executable, '-m', 'pipeline.cli', 'run', '--profile', config.profile,
       '--data-dir', config.data_dir, '--output-dir', config.output_dir,
       '--set', f'beam.runner={beam.runner}',
       '--set', f'beam.job_endpoint={beam.job_endpoint}',
       '--set', f'beam.worker_pool={beam.worker_pool}'],
      env=dict(os.environ, PYTHONPATH=config_lib.REPO_ROOT),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_same_outputs(direct: config_lib.PipelineConfig,
                         scaled: config_lib.PipelineConfig) -> None:
  """What the Beam steps wrote on the cluster equals what the DirectRunner wrote."""
  for node, key in (('IdxExampleGen', 'examples'),
                    ('Transform', 'transformed_examples')):
    want = beam_outputs.output_uri(direct, node, key)
    got = beam_outputs.output_uri(scaled, node, key)
    for split in beam_outputs.SPLITS:
      expected = beam_outputs.sorted_examples(want, split)
      assert beam_outputs.sorted_examples(got, split) == expected, (node, split)
  want = beam_outputs.output_uri(direct, 'StatisticsGen', 'statistics')
  got = beam_outputs.output_uri(scaled, 'StatisticsGen', 'statistics')
  for split in beam_outputs.SPLITS:
    assert not beam_outputs.differences(beam_outputs.statistics(want, split),
                                        beam_outputs.statistics(got, split))
  # The Trainer sees the same examples in another order (the cluster writes
  # them in other files), so its model is another draw of the same recipe.
  single = run_report.summarize(direct).evaluation
  summary = run_report.summarize(scaled)
  assert summary.evaluation.blessed, summary.evaluation.failures
  assert summary.evaluation.candidate == pytest.approx(single.candidate,
                                                       abs=0.03)
  assert summary.pushed


def _assert_every_pool_served(state: local.State) -> None:
  for index in range(1, state.workers + 1):
    with open(os.path.join(state.directory, f'worker-pool-{index}.log')) as f:
      assert 'starting SDK worker' in f.read(), f'worker pool {index} was idle'


def test_flink_runs_the_beam_steps_like_the_direct_runner_and_survives_a_lost_task_manager(
    smoke_pipeline, tmp_path):
  with _cluster('flink', str(tmp_path / 'flink')) as state:
    config = _on_cluster(smoke_pipeline, state, str(tmp_path / 'out'))

    # A TaskManager dies during a Beam step: Flink restarts the job, finds
    # one slot where it needs two, and the run fails with one line.
    run = _cli_run(config)
    for line in run.stdout:
      if line.startswith('[4/'):  # StatisticsGen has started
        break
    deadline = time.monotonic() + 60
    while not any(j['state'] == 'RUNNING' for j in flink.jobs(state)):
      assert time.monotonic() < deadline, 'no Flink job started'
      time.sleep(0.2)
    os.kill(flink.task_manager_pids(state)[-1], signal.SIGKILL)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 1, out + err
    assert err.startswith('Error: pipeline failed:') and err.count('\n') == 1, err
    assert not atomic_pusher.versions(config.model_base_path)

    # A new TaskManager in its place: the rerun completes, from the cache up to
    # the failed step.
    flink.start_task_manager(state, 2)
    rerun = _cli_run(config)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out + err
    assert re.search(r'IdxExampleGen done in .*\(cached\)', out), out

    jobs = flink.jobs(state)
    _assert_every_pool_served(state)
  states = [job['state'] for job in sorted(jobs, key=lambda j: j['start-time'])]
  # ExampleGen, the failed StatisticsGen, then the rerun's four Beam steps less
  # the cached ExampleGen: Flink's own record of where they ran.
  assert states[:2] == ['FINISHED', 'FAILED'], states
  assert states[2:] == ['FINISHED'] * (len(BEAM_STEPS) - 1), states
  _assert_same_outputs(smoke_pipeline, config)


# Beside the smoke run's group, on the other test worker: the Spark cluster
# mostly waits on its JVMs, and the Flink test runs meanwhile (conftest.py).
@pytest.mark.xdist_group('spark')
def test_spark_runs_the_beam_steps_like_the_direct_runner(smoke_pipeline, tmp_path):
  with _cluster('spark', str(tmp_path / 'spark')) as state:
    config = _on_cluster(smoke_pipeline, state, str(tmp_path / 'out'))
    local_runner.run(config, out=lambda line: None)
    applications = spark.applications(state)
    workers = spark.alive_workers(state)
    _assert_every_pool_served(state)
  # The master's own record: one application per Beam step, all finished, on
  # both workers.
  assert len(workers) == 2
  assert [app['state'] for app in applications] == ['FINISHED'] * len(BEAM_STEPS)
  _assert_same_outputs(smoke_pipeline, config)


def test_flink_run_without_a_cluster_says_how_to_start_one(mnist_dir, tmp_path):
  address = f'localhost:{process_lib.free_port()}'
  config = config_lib.load(
      'smoke', data_dir=mnist_dir, output_dir=str(tmp_path / 'out'),
      beam=config_lib.BeamConfig(runner='flink', job_endpoint=address))
  run = _cli_run(config)
  out, err = run.communicate(timeout=120)
  assert run.returncode == 1
  assert err.count('\n') == 1 and address in err, err
  assert './mnist-tfx cluster up flink' in err
  assert not os.path.exists(config.output_dir)
