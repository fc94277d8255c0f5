"""The launcher's presets (experiments/registry.py) build the rounds they
name: FedOpt's server optimizers and the sparse-upload control."""

import jax
import numpy as np

import fedmchain_jax as fmc
from experiments import registry
from experiments import train
from tests import common
from tests.test_launcher import tiny_config


def _one_round(algorithm_name, **overrides):
  """(params before, params after one round, metrics) of a preset."""
  config = tiny_config(algorithm=algorithm_name, **overrides)
  apply_fn, params, data = common.synthetic_setup(6, 16, (8,))
  algorithm = train.build_algorithm(config, apply_fn, ('strong', 'weak'), 6)
  state, metrics = jax.jit(
      algorithm.run_round,
      compiler_options=fmc.determinism.compiler_options())(
          algorithm.init(params), data, jax.random.key(0))
  return params, state, metrics


def _assert_first_adam_step(before, sgd, adam, lr):
  """Adam's first step from zero moments is -lr m / (sqrt(v) + eps) with
  m / sqrt(v) = g / |g|: every parameter the SGD (lr 1) step moves moves by
  lr (up to eps) in that step's direction."""
  for w0, w_sgd, w_adam in zip(jax.tree.leaves(before),
                               jax.tree.leaves(sgd.params),
                               jax.tree.leaves(adam.params)):
    delta, step = np.asarray(w_sgd - w0), np.asarray(w_adam - w0)
    moved = np.abs(delta) > 1e-5
    assert moved.any()
    np.testing.assert_allclose(step[moved], lr * np.sign(delta[moved]),
                               rtol=1e-3)
    assert np.abs(step).max() <= lr * (1 + 1e-6)


def test_fedopt_adam_first_step_is_lr_times_the_sign_of_the_mean_update():
  # The FedAvg step of the same round is the clients' mean update.
  before, fedavg, _ = _one_round('fedavg', **{'server.lr': 1.0})
  _, adam, _ = _one_round('fedopt_adam', **{'server.lr': 0.01})
  _assert_first_adam_step(before, fedavg, adam, 0.01)


def test_fedopt_yogi_uses_yogi_at_the_server():
  config = tiny_config(algorithm='fedopt_yogi')
  apply_fn, params, _ = common.synthetic_setup(6, 16, (8,))
  algorithm = train.build_algorithm(config, apply_fn, ('strong', 'weak'), 6)
  state = algorithm.init(params)
  # optax.yogi's state: scale_by_yogi's (count, mu, nu) and the lr scale.
  assert type(state.opt_state[0]).__name__ == 'ScaleByAdamState'
  jax.tree.map(np.testing.assert_array_equal, state.opt_state[0].nu,
               jax.tree.map(lambda p: np.full(p.shape, 1e-6, np.float32),
                            params))


def test_joint_sparse_mean_is_joint_training_with_the_sparse_upload():
  steps = {'client.num_local_steps': 4, 'client.steps_per_phase': 2}
  _, _, dense = _one_round('fedavg', **steps)
  _, state, sparse = _one_round('joint_sparse_mean', **steps)
  # The same train loss (the same joint local work: 2 modalities x 2 steps
  # per phase against 4 steps), a fraction of the bytes,
  # and an error-feedback residual per block.
  np.testing.assert_allclose(sparse['train/loss'], dense['train/loss'],
                             rtol=1e-6)
  assert float(sparse['comm/upload_bytes']) < 0.3 * float(
      dense['comm/upload_bytes'])
  assert set(state.client_states) == {'encoder_strong', 'encoder_weak',
                                      'classifier'}
  assert not any('ssca' in name for name in sparse)
  assert registry.ALGORITHMS['joint_sparse_mean'].local_training == 'joint'


def test_fedmchain_adam_steps_by_lr_in_the_sign_of_fedmchains_aggregate():
  # The same round as fedmchain (chain, sparse upload, SSCA): its SGD step
  # at lr 1 is the aggregate U.
  before, sgd, _ = _one_round('fedmchain', **{'server.lr': 1.0})
  _, adam, _ = _one_round('fedmchain_adam', **{'server.lr': 0.01})
  _assert_first_adam_step(before, sgd, adam, 0.01)
