"""The local cluster of training workers (multi_worker.py), without training: its
TF_CONFIGs, and a worker that fails."""

import json
import types

import pytest

from models.trainer import multi_worker
from models.trainer.training_config import TrainingConfig


def test_each_worker_gets_the_whole_cluster_and_its_own_place():
  configs = multi_worker.tf_configs([2001, 2002, 2003])
  assert [c['task'] for c in configs] == [
      {'type': 'worker', 'index': i} for i in range(3)]
  assert {json.dumps(c['cluster']) for c in configs} == {json.dumps(
      {'worker': ['127.0.0.1:2001', '127.0.0.1:2002', '127.0.0.1:2003']})}


@pytest.mark.processes
def test_a_failing_worker_fails_the_training_with_its_log(tmp_path):
  # Arguments run_fn cannot train on: each worker exits with an error.
  fn_args = types.SimpleNamespace(
      train_files=[str(tmp_path / 'none' / '*')], eval_files=[],
      transform_output=str(tmp_path / 'no_transform_output'),
      serving_model_dir=str(tmp_path / 'serving'),
      model_run_dir=str(tmp_path / 'run'),
      custom_config={'training': {'workers': 2}})
  with pytest.raises(multi_worker.WorkerFailedError,
                     match=r'training worker \d exited with status 1 '):
    multi_worker.train_on_local_cluster(fn_args, 2, timeout_seconds=120)
  assert sorted(p.name for p in (tmp_path / 'run' / 'workers').iterdir()) == [
      'worker-0.log', 'worker-1.log']
  assert not (tmp_path / 'serving').exists()


def test_workers_must_be_at_least_one():
  with pytest.raises(ValueError, match='training.workers=0'):
    TrainingConfig(workers=0)
