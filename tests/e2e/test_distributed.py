"""The pipeline scaled out: the Trainer on several worker processes.

`training.workers=2` trains the shared smoke run's recipe under
MultiWorkerMirroredStrategy on two worker processes of this machine, on loopback,
each with its own TF_CONFIG (models/trainer/multi_worker.py), as a cluster's worker
pool runs them. The rest of the pipeline then judges, validates and pushes that
model as any other.
"""

import dataclasses
import json
import os
import re

import pytest

from components import atomic_pusher
from pipeline import config as config_lib
from pipeline import local_runner
from pipeline import mlmd
from pipeline.reports import run_report
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
