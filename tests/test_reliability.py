"""Crash and resume, corrupt checkpoints, refused resumes, bad data, faults."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

import fedmchain_jax as fmc
from tests import common
from fedmchain_jax import data as fdata
from experiments import train
from tests.test_launcher import tiny_config, without_times

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A run long enough to be killed mid-way (the kill lands after round 90 of 300).
LONG = ['--config.data.num_clients=20', '--config.rounds.cohort_size=10',
        '--config.model.hidden=(128,128)', '--config.client.batch_size=32',
        '--config.rounds.num_rounds=300', '--config.rounds.eval_every=10',
        '--config.rounds.checkpoint_every=25', '--config.algorithm=fedmchain']


def _command(workdir):
  return [sys.executable, '-m', 'experiments.main',
          '--config=experiments/configs/default.py', f'--workdir={workdir}',
          *LONG]


def _final_params(workdir):
  manager = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'))
  restored = manager.restore(manager.latest_step())
  return manager.latest_step(), restored['state']['params']


def test_sigkill_or_ctrl_c_then_rerun_equals_an_uninterrupted_run(tmp_path):
  straight = subprocess.run(_command(tmp_path / 'straight'), cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
  assert straight.returncode == 0, straight.stderr[-2000:]
  expected = [json.loads(l) for l in
              (tmp_path / 'straight' / 'metrics.jsonl').read_text().splitlines()]
  step_a, params_a = _final_params(tmp_path / 'straight')
  for name, sig in (('killed', signal.SIGKILL), ('ctrl_c', signal.SIGINT)):
    workdir = tmp_path / name
    metrics = workdir / 'metrics.jsonl'
    process = subprocess.Popen(_command(workdir), cwd=ROOT,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # Stop somewhere after the first checkpoint (round 25), before the end.
    while time.time() < deadline:
      if metrics.exists() and len(metrics.read_text().splitlines()) >= 9:
        break
      time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    lines = metrics.read_text().splitlines()
    assert len(lines) < 30, 'the run finished before it could be stopped'
    if sig == signal.SIGINT:
      # One line, status 130, and a checkpoint of the round it names.
      assert process.returncode == 130, stderr[-2000:]
      assert 'Traceback' not in stderr
      last = stderr.strip().splitlines()[-1]
      assert last.startswith('interrupted after round '), last
      stopped = int(last.split()[3].rstrip(';'))
      assert last.endswith(f'resume from round {stopped}')
      assert (workdir / 'checkpoints' / str(stopped)).is_dir()
    again = subprocess.run(_command(workdir), cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert 'Resumed from the checkpoint of round' in again.stderr
    if sig == signal.SIGINT:
      assert f'checkpoint of round {stopped} ' in again.stderr
    records = [json.loads(l) for l in metrics.read_text().splitlines()]
    assert [r['round'] for r in records] == list(range(10, 301, 10))
    assert without_times(records) == without_times(expected)
    step_b, params_b = _final_params(workdir)
    assert step_a == step_b == 300
    jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
  # A finished run asked again says so and compiles nothing.
  again = subprocess.run(_command(workdir), cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
  assert again.returncode == 0
  assert 'holds all 300 rounds already' in again.stderr
  assert 'Compiled' not in again.stderr


def test_corrupt_latest_checkpoint_falls_back(tmp_path, caplog):
  config = tiny_config(**{'rounds.num_rounds': 4,
                          'rounds.checkpoint_every': 2})
  longer = tiny_config(**{'rounds.num_rounds': 6,
                          'rounds.checkpoint_every': 2})
  straight = train.train_and_evaluate(longer, str(tmp_path / 'a'))
  workdir = tmp_path / 'b'
  train.train_and_evaluate(config, str(workdir))
  # Damage every array file of the round-4 checkpoint.
  for root, _, files in os.walk(workdir / 'checkpoints' / '4'):
    for name in files:
      if not name.endswith('.json') and 'metadata' not in name:
        with open(os.path.join(root, name), 'r+b') as f:
          f.truncate(3)
  # Going on past round 4 (a finished run would not be read again).
  again = train.train_and_evaluate(longer, str(workdir))
  assert 'checkpoint of round 4' in caplog.text
  assert 'trying the one before' in caplog.text
  assert without_times(again) == without_times(straight)


def test_partial_metrics_line_is_dropped(tmp_path):
  config = tiny_config(**{'rounds.num_rounds': 3})
  train.train_and_evaluate(config, str(tmp_path))
  path = tmp_path / 'metrics.jsonl'
  text = path.read_text()
  path.write_text(text + '{"round": 4, "eval/acc')  # Died mid-write.
  # Remove the last checkpoint too, so round 3 is redone.
  shutil.rmtree(tmp_path / 'checkpoints' / '3')
  records = train.train_and_evaluate(config, str(tmp_path))
  assert [r['round'] for r in records] == [1, 2, 3]


def test_resume_with_a_changed_config_is_refused(tmp_path):
  train.train_and_evaluate(tiny_config(), str(tmp_path))
  with pytest.raises(train.ResumeError) as info:
    train.train_and_evaluate(tiny_config(**{'client.lr': 0.1}), str(tmp_path))
  assert str(info.value).startswith(
      f'--workdir={tmp_path} holds a run with config.client.lr=0.05; this '
      'config has 0.1.')
  with pytest.raises(train.ResumeError, match='config.model.hidden'):
    train.train_and_evaluate(tiny_config(**{'model.hidden': (16,)}),
                             str(tmp_path))
  with pytest.raises(train.ResumeError,
                     match='config.rounds.layout_independent_bits=True'):
    train.train_and_evaluate(
        tiny_config(**{'rounds.layout_independent_bits': False}),
        str(tmp_path))
  # Extending the run is allowed, and so is computing SSCA's agreement
  # another way, also for a run saved before those fields existed (and
  # before layout_independent_bits, which such a run had on).
  saved = json.loads((tmp_path / 'config.json').read_text())
  for field in ('agreement_dtype', 'agreement_row_groups',
                'agreement_materialize', 'layout_independent_bits'):
    del saved['rounds'][field]
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  records = train.train_and_evaluate(
      tiny_config(**{'rounds.num_rounds': 3,
                     'rounds.agreement_dtype': 'float32',
                     'rounds.agreement_row_groups': 2}), str(tmp_path))
  assert [r['round'] for r in records] == [1, 2, 3]


def test_launcher_refuses_a_changed_config_in_one_line(tmp_path):
  from tests.test_launcher import _launch
  assert _launch(tmp_path).returncode == 0
  result = _launch(tmp_path, '--config.seed=3')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      f'error: --workdir={tmp_path} holds a run with config.seed=0; this '
      'config has 3.')
  assert 'Traceback' not in result.stderr


def _population(labels=None, modality_mask=None, test_shape=(4,)):
  features = {'a': np.zeros((2, 3, 4), np.float32),
              'b': np.zeros((2, 3, 2), np.float32)}
  data = fdata.FederatedData(
      features=features,
      labels=np.zeros((2, 3), np.int32) if labels is None else labels,
      example_mask=np.ones((2, 3), bool),
      modality_mask=modality_mask or {'a': np.ones(2, bool),
                                      'b': np.ones(2, bool)},
      weights=np.ones(2, np.float32))
  test = fdata.TestData({'a': np.zeros((5,) + test_shape, np.float32),
                         'b': np.zeros((5, 2), np.float32)},
                        np.zeros(5, np.int32))
  return data, test


@pytest.mark.parametrize('kwargs, message', [
    (dict(labels=np.full((2, 3), 7, np.int32)),
     r'train labels span \[7, 7\]; allowed are 0 to 4'),
    (dict(test_shape=(5,)),
     r"modality 'a' has example shape \(4,\) in train but \(5,\) in test"),
    (dict(modality_mask={'a': np.ones(2, bool), 'b': np.zeros(2, bool)}),
     "modality 'b' is present in no client"),
])
def test_bad_data_is_reported_at_load_time(kwargs, message):
  data, test = _population(**kwargs)
  with pytest.raises(fdata.DataError, match=message):
    fdata.validate(data, test, num_classes=5)
  fdata.validate(*_population(), num_classes=5)


def test_empty_clients_need_the_flag_and_weight_zero():
  data, test = _population()
  data = data._replace(example_mask=np.array([[True] * 3, [False] * 3]))
  with pytest.raises(fdata.DataError,
                     match=r'1 client\(s\) hold no examples \(first: client 1\)'):
    fdata.validate(data, test, num_classes=5)
  with pytest.raises(fdata.DataError, match='but have a non-zero weight'):
    fdata.validate(data, test, num_classes=5, allow_empty_clients=True)
  data = data._replace(weights=np.float32([3.0, 0.0]))
  fdata.validate(data, test, num_classes=5, allow_empty_clients=True)


def _fault_setup(faults, num_clients=12, cohort_size=10):
  import optax
  apply_fn, params, train_data = common.synthetic_setup(num_clients, 16, (8,))
  algorithms = {
      'fedavg': fmc.algorithms.fedavg(
          fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1),
          optax.sgd(1.0), 4, cohort_size, 8, faults=faults),
      'fedmchain': fmc.algorithms.fedmchain(
          apply_fn, ('strong', 'weak'), optax.sgd(0.1), optax.sgd(1.0), 2,
          cohort_size, 8, num_clients, faults=faults),
  }
  return algorithms, params, train_data


@pytest.mark.parametrize('name', ['fedavg', 'fedmchain'])
def test_nonfinite_updates_are_excluded(name):
  faults = fmc.faults.FaultModel(nonfinite_rate=0.3)
  algorithms, params, data = _fault_setup(faults)
  algorithm = algorithms[name]
  run = jax.jit(algorithm.run_round)
  state = algorithm.init(params)
  excluded = 0
  for _ in range(5):
    state, metrics = run(state, data, jax.random.key(0))
    excluded += int(metrics['faults/nonfinite'])
    assert int(metrics['clients/participating']) == 10 - int(
        metrics['faults/nonfinite'])
  assert 5 <= excluded <= 25  # About 30% of 50 client-rounds.
  assert all(bool(jnp.all(jnp.isfinite(x)))
             for x in jax.tree.leaves(state.params))
  assert all(bool(jnp.all(jnp.isfinite(x)))
             for x in jax.tree.leaves(state.client_states))


def test_dropout_and_attackers_are_counted_and_attackers_are_fixed():
  faults = fmc.faults.FaultModel(dropout_rate=0.2, attack_fraction=0.3,
                                 attack='sign_flip')
  algorithms, params, data = _fault_setup(faults, num_clients=10)
  algorithm = algorithms['fedavg']
  run = jax.jit(algorithm.run_round)
  state = algorithm.init(params)
  dropped = 0
  for _ in range(5):
    state, metrics = run(state, data, jax.random.key(0))
    dropped += int(metrics['faults/dropped'])
    attackers = int(metrics['faults/attackers'])
    assert int(metrics['clients/participating']) == 10 - int(
        metrics['faults/dropped'])
  assert 2 <= dropped <= 20
  # The attacker set is the same every round: with the whole population in
  # each cohort, the count changes only through dropouts.
  fixed = fmc.faults.is_attacker(jax.random.key(0), jnp.arange(10), 0.3)
  assert attackers <= int(fixed.sum())


@pytest.mark.parametrize('attack', ['sign_flip', 'scale', 'noise'])
def test_attacks_change_the_update(attack):
  deltas = {'w': jnp.arange(1.0, 13.0).reshape(3, 4)}
  weights = jnp.ones(3)
  model = fmc.faults.FaultModel(attack_fraction=1.0, attack=attack,
                                attack_scale=5.0)
  out, _, metrics = fmc.faults.apply_faults(
      model, deltas, weights, jnp.arange(3), jax.random.key(0),
      jax.random.key(1))
  assert int(metrics['faults/attackers']) == 3
  if attack == 'sign_flip':
    np.testing.assert_array_equal(out['w'], -deltas['w'])
  elif attack == 'scale':
    np.testing.assert_array_equal(out['w'], 5 * deltas['w'])
  else:
    # Noise of each client's own norm (in expectation).
    ratio = np.linalg.norm(out['w'], axis=1) / np.linalg.norm(deltas['w'],
                                                              axis=1)
    assert np.all((ratio > 0.2) & (ratio < 3))
    assert not np.allclose(out['w'], deltas['w'])
