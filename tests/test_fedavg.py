"""Tests of local training and the FedAvg/FedProx round."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedmchain_jax as fmc
from tests import common
from fedmchain_jax import data as fdata


def quadratic_loss(params, batch, key):
  """0.5 * mean((w - x)^2): gradient w - mean(x), minimum at mean(x)."""
  del key
  x = batch['features']['x'][:, 0]
  loss = fmc.losses.masked_mean(0.5 * (params['w'][0] - x)**2, batch['mask'])
  return loss, {'loss': loss}


def toy_cohort(values, weights, num_steps=2, batch_size=3):
  """Client c's examples all equal values[c]; leaves [C, S, B, ...]."""
  values = jnp.asarray(values, jnp.float32)
  num_clients = values.shape[0]
  shape = (num_clients, num_steps, batch_size)
  return fdata.Cohort(
      client_ids=jnp.arange(num_clients, dtype=jnp.int32),
      features={'x': jnp.broadcast_to(values[:, None, None, None], shape + (1,))},
      labels=jnp.zeros(shape, jnp.int32),
      example_mask=jnp.ones(shape, bool),
      modality_mask={'x': jnp.ones(num_clients, bool)},
      weights=jnp.asarray(weights, jnp.float32))


def toy_algorithm(prox_mu=0.0, server_lr=1.0):
  return fmc.algorithms.fedavg(
      quadratic_loss, optax.sgd(0.5), optax.sgd(server_lr), num_local_steps=2,
      cohort_size=3, batch_size=3, prox_mu=prox_mu)


def test_fedavg_golden_numbers():
  # SGD lr 0.5 on 0.5 (w - x)^2 from w = 0: w <- 0.5 w + 0.5 x, so after
  # two steps w = 0.75 x. Clients x = 1 and x = 3 give deltas 0.75 and 2.25;
  # weights 1 and 2 average to (0.75 + 2 * 2.25) / 3 = 1.75. The third client
  # has weight 0 and NaN data: it must change nothing.
  # Losses at the pre-step params: client 1: (0.5 + 0.125) / 2 = 0.3125,
  # client 2: (4.5 + 1.125) / 2 = 2.8125; weighted (0.3125 + 5.625) / 3.
  algorithm = toy_algorithm()
  state = algorithm.init({'w': jnp.zeros(1)})
  cohort = toy_cohort([1.0, 3.0, np.nan], [1.0, 2.0, 0.0])
  state, metrics = jax.jit(algorithm.run_cohort)(state, cohort,
                                                 jax.random.key(0))
  np.testing.assert_allclose(state.params['w'], [1.75], rtol=1e-6)
  np.testing.assert_allclose(metrics['train/loss'], 5.9375 / 3, rtol=1e-6)
  assert int(state.round) == 1
  assert int(metrics['clients/participating']) == 2
  assert float(metrics['comm/upload_bytes']) == 2 * 4  # Two clients, one f32.


def test_server_learning_rate_scales_the_averaged_delta():
  algorithm = toy_algorithm(server_lr=0.5)
  state = algorithm.init({'w': jnp.zeros(1)})
  state, _ = algorithm.run_cohort(state, toy_cohort([1.0, 3.0, 0.0],
                                                    [1.0, 2.0, 0.0]),
                                  jax.random.key(0))
  np.testing.assert_allclose(state.params['w'], [0.875], rtol=1e-6)


def test_a_round_in_which_nobody_sends_changes_nothing():
  # Every client silent (weight 0: dropped or padding): no update, no bytes,
  # and kept_fraction 0 rather than 0 / 0.
  algorithm = toy_algorithm()
  state = algorithm.init({'w': jnp.full(1, 2.0)})
  state, metrics = jax.jit(algorithm.run_cohort)(
      state, toy_cohort([1.0, 3.0, 5.0], [0.0, 0.0, 0.0]), jax.random.key(0))
  np.testing.assert_array_equal(state.params['w'], [2.0])
  assert float(metrics['comm/kept_fraction']) == 0.0
  assert float(metrics['comm/upload_bytes']) == 0.0
  assert float(metrics['comm/download_bytes']) == 0.0
  assert int(metrics['clients/participating']) == 0


@pytest.mark.parametrize('mu, start, expected', [
    (1.0, 0.0, 3.5 / 3), (0.5, 0.0, 4.375 / 3), (1.0, 1.0, 5 / 3)])
def test_fedprox_golden_numbers(mu, start, expected):
  # The gradient is (w - x) + mu (w - w0), anchor w0 = start. Lr 0.5 from
  # w0 = 0: step 1 gives w = 0.5 x; step 2 keeps it at mu = 1 (gradient 0)
  # and moves it by 0.5 * 0.25 x to 0.625 x at mu = 0.5. Deltas x = 1 and 3
  # with weights 1 and 2: (0.5 + 2 * 1.5) / 3 and (0.625 + 2 * 1.875) / 3.
  # From w0 = 1 at mu = 1: step 1 gives 0.5 + 0.5 x, then gradient 0:
  # deltas 0 and 1, mean 2 / 3, w = 1 + 2 / 3.
  algorithm = toy_algorithm(prox_mu=mu)
  state = algorithm.init({'w': jnp.full(1, start)})
  state, _ = algorithm.run_cohort(state, toy_cohort([1.0, 3.0, 0.0],
                                                    [1.0, 2.0, 0.0]),
                                  jax.random.key(0))
  np.testing.assert_allclose(state.params['w'], [expected], rtol=1e-6)


def test_joint_without_prox_mu_is_plain_local_training():
  cohort = toy_cohort([1.0, 3.0], [1.0, 1.0])
  batches = fdata.client_batches(cohort, 1)
  params = {'w': jnp.full(1, 0.5)}
  trained, _ = fmc.client.joint(quadratic_loss, optax.sgd(0.5), 2).update(
      params, batches, {}, jax.random.key(0), 0)
  expected, _ = fmc.client.local_train(quadratic_loss, optax.sgd(0.5), params,
                                       batches, jax.random.key(0))
  np.testing.assert_array_equal(trained['w'], expected['w'])
  # 0.5 -> 1.75 -> 2.375 (w <- 0.5 w + 0.5 x, x = 3).
  np.testing.assert_allclose(trained['w'], [2.375], rtol=1e-6)


def _real_setup(num_clients=5, cohort_size=4, num_steps=3, batch_size=4,
                prox_mu=0.0, server_optimizer=None):
  apply_fn, params, train = common.synthetic_setup(
      num_clients, 12, (8,), missing_modality_rate=0.3, dirichlet_alpha=0.5,
      init_seed=1)
  loss_fn = fmc.losses.fused_classification_loss(apply_fn)
  algorithm = fmc.algorithms.fedavg(
      loss_fn, optax.sgd(0.1), server_optimizer or optax.sgd(1.0),
      num_local_steps=num_steps, cohort_size=cohort_size,
      batch_size=batch_size, prox_mu=prox_mu)
  return algorithm, loss_fn, params, train


def test_vmapped_local_training_equals_a_loop_over_clients():
  algorithm, loss_fn, params, train = _real_setup()
  cohort = fdata.sample_cohort(jax.random.key(2), train, 4, 3, 4)
  batches = fdata.cohort_batches(cohort)
  keys = jax.random.split(jax.random.key(3), 4)
  local = lambda b, k: fmc.client.local_train(loss_fn, optax.sgd(0.1), params,
                                              b, k)
  vmapped = jax.jit(jax.vmap(local))(batches, keys)
  one = jax.jit(local)
  for c in range(4):
    looped = one(fdata.client_batches(cohort, c), keys[c])
    jax.tree.map(
        lambda v, l: np.testing.assert_allclose(v[c], l, rtol=1e-5, atol=1e-6),
        vmapped, looped)


def test_padding_client_changes_nothing():
  algorithm, _, params, train = _real_setup()
  state = algorithm.init(params)
  cohort = fdata.sample_cohort(jax.random.key(2), train, 4, 3, 4)
  # Append a fifth client: random data and weight 0.
  padded = jax.tree.map(lambda x: jnp.concatenate([x, x[:1] * 7 + 1]), cohort)
  padded = padded._replace(weights=padded.weights.at[-1].set(0.0))
  run = jax.jit(algorithm.run_cohort)
  reference, ref_metrics = run(state, cohort, jax.random.key(5))
  result, metrics = run(state, padded, jax.random.key(5))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               reference.params, result.params)
  np.testing.assert_allclose(ref_metrics['train/loss'], metrics['train/loss'],
                             rtol=1e-6)
  assert metrics['comm/upload_bytes'] == ref_metrics['comm/upload_bytes']


def test_permuting_clients_changes_nothing():
  algorithm, _, params, train = _real_setup()
  state = algorithm.init(params)
  cohort = fdata.sample_cohort(jax.random.key(2), train, 4, 3, 4)
  permuted = jax.tree.map(lambda x: x[jnp.array([2, 0, 3, 1])], cohort)
  run = jax.jit(algorithm.run_cohort)
  a, _ = run(state, cohort, jax.random.key(5))
  b, _ = run(state, permuted, jax.random.key(5))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6),
               a.params, b.params)


@pytest.mark.parametrize('prox_mu', [0.0, 0.1])
def test_same_seed_gives_identical_rounds(prox_mu):
  algorithm, _, params, train = _real_setup(prox_mu=prox_mu)
  run = jax.jit(algorithm.run_round)

  def three_rounds():
    state = algorithm.init(params)
    history = []
    for _ in range(3):
      state, metrics = run(state, train, jax.random.key(9))
      history.append(metrics)
    return state, history

  first, second = three_rounds(), three_rounds()
  jax.tree.map(np.testing.assert_array_equal, first, second)
  # Different rounds draw different cohorts/batches, so losses differ.
  losses = [float(m['train/loss']) for m in first[1]]
  assert len(set(losses)) == 3


def test_round_compiles_once():
  traces = []
  algorithm, _, params, train = _real_setup(server_optimizer=optax.adam(0.01))

  def counted(state, data, key):
    traces.append(1)
    return algorithm.run_round(state, data, key)

  run = jax.jit(counted)
  state = algorithm.init(params)
  for _ in range(3):
    state, _ = run(state, train, jax.random.key(0))
  assert int(state.round) == 3
  assert len(traces) == 1
  assert run._cache_size() == 1


def test_training_lowers_the_loss():
  algorithm, loss_fn, params, train = _real_setup(num_clients=5, cohort_size=5)
  run = jax.jit(algorithm.run_round)
  state = algorithm.init(params)
  losses = []
  for _ in range(15):
    state, metrics = run(state, train, jax.random.key(0))
    losses.append(float(metrics['train/loss']))
  assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


@pytest.mark.parametrize('num_steps,offset', [(1, 0), (3, 0), (2, 2)])
def test_scan_steps_is_a_scan_over_the_indexed_batches(num_steps, offset):
  # A step that records its index and batch, with a running sum as carry.
  batches = {'x': jnp.arange(5.0) * 10}

  def step(carry, inputs):
    index, batch = inputs
    return carry + batch['x'], {'index': index, 'x': batch['x']}

  carry, metrics = jax.jit(
      lambda c: fmc.client.scan_steps(step, c, batches, num_steps, offset))(
          jnp.float32(1.0))
  expected_x = 10.0 * np.arange(offset, offset + num_steps)
  np.testing.assert_array_equal(metrics['index'], np.arange(num_steps))
  np.testing.assert_array_equal(metrics['x'], expected_x)
  assert float(carry) == 1.0 + expected_x.sum()
  if offset == 0:  # The default offset.
    default = fmc.client.scan_steps(step, jnp.float32(1.0), batches,
                                    num_steps)
    jax.tree.map(np.testing.assert_array_equal, default, (carry, metrics))
