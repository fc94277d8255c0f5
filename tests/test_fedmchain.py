"""Tests of FedMChain: chain phases, regularizers, uploads, the whole round."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedmchain_jax as fmc
from tests import common
from fedmchain_jax import data as fdata
from fedmchain_jax import client

MODALITIES = ('strong', 'weak')


def logits_model(params, features, modality_mask=None, only=None):
  """A stand-in model: modality m's logits are params['head_m']['z'] [K]."""
  unimodal = {}
  batch = next(iter(features.values())).shape[:1]
  fused = jnp.zeros(batch + next(iter(params.values()))['z'].shape)
  for m in (('a', 'b') if only is None else only):
    z = jnp.broadcast_to(params[f'head_{m}']['z'], features[m].shape[:1] +
                         params[f'head_{m}']['z'].shape)
    unimodal[m] = z
    present = True if modality_mask is None else modality_mask[m]
    fused = fused + jnp.where(present, z, 0.0)
  return fused, unimodal


def test_boost_regularizer_golden_numbers():
  # z_m = [0, 0], prev = [ln 3, 0], y = 0:
  # CE(y, z_m) = ln 2; CE(y, prev + z_m) = -ln(3 / 4); lam = 0.5.
  loss_fn = client.phase_loss(logits_model, 'a',
                              client.Regularizer('boost', 0.5))
  batch = {'features': {'a': jnp.zeros((1, 1))}, 'label': jnp.array([0]),
           'mask': jnp.array([True])}
  trainable = {'head_a': {'z': jnp.zeros(2)}}
  context = {'prev': jnp.array([[math.log(3), 0.0]]),
             'has_prev': jnp.array(True), 'has_other': jnp.array(True)}
  loss, metrics = loss_fn(trainable, {}, batch, context)
  np.testing.assert_allclose(loss, math.log(2) - 0.5 * math.log(0.75),
                             rtol=1e-6)
  np.testing.assert_allclose(metrics['loss'], math.log(2), rtol=1e-6)
  # No earlier modality in the chain: the term is dropped.
  loss, _ = loss_fn(trainable, {}, batch, {**context,
                                           'has_prev': jnp.array(False)})
  np.testing.assert_allclose(loss, math.log(2), rtol=1e-6)
  # lam = 0 switches it off.
  off = client.phase_loss(logits_model, 'a', client.Regularizer('boost', 0.0))
  np.testing.assert_allclose(off(trainable, {}, batch, context)[0],
                             math.log(2), rtol=1e-6)
  # z_m = [ln 2, 0]: CE(y, z_m) = ln(3 / 2); prev + z_m = [ln 6, 0] gives
  # CE = ln(7 / 6).
  trainable = {'head_a': {'z': jnp.array([math.log(2), 0.0])}}
  loss, _ = loss_fn(trainable, {}, batch, context)
  np.testing.assert_allclose(loss, math.log(1.5) + 0.5 * math.log(7 / 6),
                             rtol=1e-6)


def test_reweight_regularizer_golden_numbers():
  # other = [ln 3, 0] -> q_y = 3 / 4; w1 = 1, w2 = 0.8: weight 0.4;
  # loss = ln 2 + lam * 0.4 * ln 2 with lam = 0.5.
  loss_fn = client.phase_loss(logits_model, 'a',
                              client.Regularizer('reweight', 0.5, 1.0, 0.8))
  batch = {'features': {'a': jnp.zeros((1, 1))}, 'label': jnp.array([0]),
           'mask': jnp.array([True])}
  context = {'other': jnp.array([[math.log(3), 0.0]]),
             'has_prev': jnp.array(False), 'has_other': jnp.array(True)}
  loss, _ = loss_fn({'head_a': {'z': jnp.zeros(2)}}, {}, batch, context)
  np.testing.assert_allclose(loss, math.log(2) * 1.2, rtol=1e-6)


def _setup(num_clients=6, missing=0.0, hidden=(8,)):
  return common.synthetic_setup(num_clients, 16, hidden,
                                missing_modality_rate=missing)


def _client_batches(train, steps, client=0):
  cohort = fdata.sample_cohort(jax.random.key(1), train, 2, steps, 4)
  return fdata.client_batches(cohort, client)


def _changed(before, after):
  return {k: bool(any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(
      jax.tree.leaves(before[k]), jax.tree.leaves(after[k])))) for k in before}


def test_each_phase_moves_only_its_modality():
  apply_fn, params, train = _setup()
  update = jax.jit(client.chain(apply_fn, MODALITIES, optax.sgd(0.5), 3,
                                [('strong', 'weak')]).update)
  batches = _client_batches(train, 6)
  present = {'strong': jnp.array(True), 'weak': jnp.array(True)}
  # Mask out the examples of phase 2 ('weak'): only phase 1 can move anything,
  # and it may move only the 'strong' blocks.
  first_only = {**batches, 'mask': batches['mask'].at[3:].set(False)}
  trained, _ = update(params, first_only, present, jax.random.key(0), 0)
  assert _changed(params, trained) == {
      'encoder_strong': True, 'head_strong': True,
      'encoder_weak': False, 'head_weak': False}
  second_only = {**batches, 'mask': batches['mask'].at[:3].set(False)}
  trained, _ = update(params, second_only, present, jax.random.key(0), 0)
  assert _changed(params, trained) == {
      'encoder_strong': False, 'head_strong': False,
      'encoder_weak': True, 'head_weak': True}


def test_missing_modality_leaves_its_blocks_unchanged():
  apply_fn, params, train = _setup()
  update = jax.jit(client.chain(
      apply_fn, MODALITIES, optax.sgd(0.5), 3,
      fmc.algorithms.chain_orders(MODALITIES, 'rotate')).update)
  batches = _client_batches(train, 6)
  for round_index in (0, 1):
    present = {'strong': jnp.array(True), 'weak': jnp.array(False)}
    trained, _ = update(params, batches, present, jax.random.key(0),
                        round_index)
    assert _changed(params, trained) == {
        'encoder_strong': True, 'head_strong': True,
        'encoder_weak': False, 'head_weak': False}


@pytest.mark.parametrize('kind', ['boost', 'reweight'])
def test_regularizer_is_dropped_for_a_client_without_the_modalities_it_reads(
    kind):
  # Chain strong -> weak. A client that has 'weak' only has no earlier
  # modality (boost's prev) and no other one (reweight's other): its weak
  # phase must equal the unregularized one (lam = 0). A client with both
  # gets the term, so the comparison can tell.
  apply_fn, params, train = _setup()
  batches = _client_batches(train, 6)

  def trained(lam, present):
    update = client.chain(apply_fn, MODALITIES, optax.sgd(0.5), 3,
                          [('strong', 'weak')],
                          client.Regularizer(kind, lam))
    return jit(update.update)(
        params, batches, {m: jnp.array(v) for m, v in present.items()},
        jax.random.key(0), 0)[0]

  weak_only = {'strong': False, 'weak': True}
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6,
                                                       atol=1e-7),
               trained(1.0, weak_only), trained(0.0, weak_only))
  both = {'strong': True, 'weak': True}
  regularized, plain = trained(1.0, both), trained(0.0, both)
  assert np.abs(np.asarray(regularized['head_weak']['kernel']) -
                np.asarray(plain['head_weak']['kernel'])).max() > 1e-3
  if kind == 'boost':  # The chain's first phase has no earlier modality.
    for name in ('encoder_strong', 'head_strong'):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(
          a, b, rtol=1e-6, atol=1e-7), regularized[name], plain[name])


def test_reweight_is_dropped_for_a_single_modality():
  # One modality: no other logits to reweight by, so lam changes nothing.
  params = {'head_a': {'z': jnp.array([0.3, -0.2])}}
  batches = {'features': {'a': jnp.zeros((2, 3, 1))},
             'label': jnp.array([[0, 1, 0], [1, 1, 0]]),
             'mask': jnp.ones((2, 3), bool)}

  def trained(lam):
    update = client.chain(logits_model, ('a',), optax.sgd(0.5), 2, [('a',)],
                          client.Regularizer('reweight', lam))
    assert update.num_steps == 2
    return jit(update.update)(params, batches, {'a': jnp.array(True)},
                              jax.random.key(0), 0)[0]

  np.testing.assert_allclose(trained(1.0)['head_a']['z'],
                             trained(0.0)['head_a']['z'], rtol=1e-6)
  assert np.any(np.asarray(trained(0.0)['head_a']['z']) != [0.3, -0.2])


def test_chain_metrics_average_the_phases_a_client_ran():
  # 'loss' and 'accuracy' are the means over the present modalities' phases.
  apply_fn, params, train = _setup()
  update = jit(client.chain(apply_fn, MODALITIES, optax.sgd(0.5), 3,
                            [('strong', 'weak')]).update)
  batches = _client_batches(train, 6)
  for present, ran in (({'strong': True, 'weak': True}, MODALITIES),
                       ({'strong': True, 'weak': False}, ('strong',))):
    _, metrics = update(params, batches,
                        {m: jnp.array(v) for m, v in present.items()},
                        jax.random.key(0), 0)
    np.testing.assert_allclose(
        metrics['loss'], sum(metrics[f'loss/{m}'] for m in ran) / len(ran),
        rtol=1e-6)
  # A client with no modality (a padding client) runs no phase: zeros.
  trained, metrics = update(params, batches,
                            {m: jnp.array(False) for m in MODALITIES},
                            jax.random.key(0), 0)
  assert float(metrics['loss']) == float(metrics['accuracy']) == 0.0
  jax.tree.map(np.testing.assert_array_equal, trained, params)


def test_phase_metrics_are_means_over_the_phase_steps():
  # Stand-in logits z = 0 and lr 0: every step's CE is ln 2 (two classes),
  # so each phase's mean over its 3 steps is ln 2.
  update = client.chain(logits_model, ('a', 'b'), optax.sgd(0.0), 3,
                        [('a', 'b')], client.Regularizer('boost', 0.0))
  params = {'head_a': {'z': jnp.zeros(2)}, 'head_b': {'z': jnp.zeros(2)}}
  batches = {'features': {'a': jnp.zeros((6, 4, 1)),
                          'b': jnp.zeros((6, 4, 1))},
             'label': jnp.zeros((6, 4), jnp.int32),
             'mask': jnp.ones((6, 4), bool)}
  present = {'a': jnp.array(True), 'b': jnp.array(True)}
  _, metrics = jit(update.update)(params, batches, present,
                                  jax.random.key(0), 0)
  for name in ('loss/a', 'loss/b', 'loss'):
    np.testing.assert_allclose(metrics[name], math.log(2), rtol=1e-6)
  np.testing.assert_allclose(metrics['accuracy'], 1.0, rtol=1e-6)


def test_chain_orders():
  assert fmc.algorithms.chain_orders(('a', 'b', 'c'), 'fixed') == [
      ('a', 'b', 'c')]
  assert fmc.algorithms.chain_orders(('a', 'b', 'c'), 'rotate') == [
      ('a', 'b', 'c'), ('b', 'c', 'a'), ('c', 'a', 'b')]


def jit(fn):
  """Compiled as the launcher compiles (eager op-by-op runs round the last
  bit differently from a compiled program)."""
  return jax.jit(fn, compiler_options=fmc.determinism.compiler_options())


def test_chain_order_changes_the_result():
  apply_fn, params, train = _setup()
  batches = _client_batches(train, 6)
  present = {'strong': jnp.array(True), 'weak': jnp.array(True)}
  results = []
  for order in [('strong', 'weak'), ('weak', 'strong')]:
    update = client.chain(apply_fn, MODALITIES, optax.sgd(0.5), 3,
                          [order]).update
    results.append(jit(update)(params, batches, present, jax.random.key(0),
                               0)[0])
  rotating = client.chain(apply_fn, MODALITIES, optax.sgd(0.5), 3,
                          [('strong', 'weak'), ('weak', 'strong')]).update
  for round_index in range(4):  # Round r runs orders[r % 2].
    got, _ = jit(rotating)(params, batches, present, jax.random.key(0),
                           round_index)
    jax.tree.map(np.testing.assert_array_equal, got, results[round_index % 2])
  assert _changed(results[0], results[1])['encoder_weak']


def _fedmchain(apply_fn, num_clients, **kwargs):
  return fmc.algorithms.fedmchain(
      apply_fn, MODALITIES, optax.sgd(0.1), optax.sgd(1.0), steps_per_phase=2,
      cohort_size=4, batch_size=4, num_clients=num_clients, **kwargs)


def test_fedmchain_round_compiles_once_and_is_deterministic():
  apply_fn, params, train = _setup(missing=0.3)
  algorithm = _fedmchain(apply_fn, 6)
  traces = []

  def counted(state, data, key):
    traces.append(1)
    return algorithm.run_round(state, data, key)

  run = jax.jit(counted)

  def rounds():
    state, history = algorithm.init(params), []
    for _ in range(3):
      state, metrics = run(state, train, jax.random.key(3))
      history.append(metrics)
    return state, history

  first, second = rounds(), rounds()
  assert len(traces) == 1 and run._cache_size() == 1
  jax.tree.map(np.testing.assert_array_equal, first, second)
  assert int(first[0].round) == 3


def test_upload_bytes_and_error_feedback():
  apply_fn, params, train = _setup()
  fraction = 0.25
  algorithm = _fedmchain(apply_fn, 6, rho=fraction)
  state = algorithm.init(params)
  cohort = fdata.sample_cohort(jax.random.key(1), train, 4, 4, 4)
  # Client 2 lacks 'weak': it must not send that encoder.
  cohort = cohort._replace(modality_mask={
      'strong': jnp.ones(4, bool), 'weak': jnp.array([True, True, False, True])})
  new_state, metrics = jax.jit(algorithm.run_cohort)(state, cohort,
                                                     jax.random.key(2))
  sizes = {'encoder_strong': 32 * 8 + 8, 'encoder_weak': 32 * 8 + 8,
           'classifier': 2 * (8 * 10 + 10)}
  residuals = new_state.client_states
  assert set(residuals) == set(sizes)
  expected_bytes = 0.0
  for name, size in sizes.items():
    table = np.asarray(residuals[name])
    assert table.shape == (6, size)
    ids = np.asarray(cohort.client_ids)
    others = np.setdiff1d(np.arange(6), ids)
    assert not table[others].any()  # Only cohort rows change.
    holders = 4 if name != 'encoder_weak' else 3
    # Each holder kept about a quarter: bytes = min(positions, bitmap).
    k = math.ceil(fraction * size)
    expected_bytes += holders * min(8 * k, 4 * k + math.ceil(size / 8))
    if name == 'encoder_weak':
      assert not table[ids[2]].any()  # Never trained, nothing withheld.
  np.testing.assert_allclose(metrics['comm/upload_bytes'], expected_bytes,
                             rtol=0.05)
  assert 0.2 < float(metrics['comm/kept_fraction']) < 0.3


def _lacking_weak(train):
  """A cohort of 4 in which clients 2 and 3 lack 'weak'."""
  cohort = fdata.sample_cohort(jax.random.key(1), train, 4, 4, 4)
  return cohort._replace(modality_mask={
      'strong': jnp.ones(4, bool),
      'weak': jnp.array([True, True, False, False])})


def test_clients_lacking_a_modality_do_not_hold_its_encoder():
  # SSCA merges encoder_weak over its holders, clients 0 and 1: the round
  # gives the same encoder_weak as the round in which clients 2 and 3 send
  # nothing at all (weight 0), while they still move the other blocks.
  apply_fn, params, train = _setup()
  cohort = _lacking_weak(train)
  silent = cohort._replace(weights=cohort.weights.at[2:].set(0.0))
  algorithm = _fedmchain(apply_fn, 6, rho=0.25, error_feedback=False)
  run = jax.jit(algorithm.run_cohort)
  state = algorithm.init(params)
  a, _ = run(state, cohort, jax.random.key(2))
  b, _ = run(state, silent, jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, a.params['encoder_weak'],
               b.params['encoder_weak'])
  assert np.any(np.asarray(a.params['encoder_weak']['Dense_0']['kernel']) !=
                np.asarray(params['encoder_weak']['Dense_0']['kernel']))
  assert np.any(np.asarray(a.params['head_strong']['kernel']) !=
                np.asarray(b.params['head_strong']['kernel']))


def test_kept_fraction_and_bytes_count_the_holders_of_each_block():
  # Dense uploads (rho = 1): a holder sends its row's non-zero entries, so
  # kept_fraction = sum over blocks and holders of nnz / sum of |H_b| P_b,
  # and each holder's bytes are min(8 k, 4 k + ceil(P_b / 8), 4 P_b).
  apply_fn, params, train = _setup()
  cohort = _lacking_weak(train)
  algorithm = _fedmchain(apply_fn, 6, rho=1.0, error_feedback=False)
  state = algorithm.init(params)
  trained, _ = jax.jit(algorithm.train_cohort)(state, cohort,
                                               jax.random.key(2))
  _, metrics = jax.jit(algorithm.run_cohort)(state, cohort, jax.random.key(2))
  holders = {'encoder_strong': [0, 1, 2, 3], 'encoder_weak': [0, 1],
             'classifier': [0, 1, 2, 3]}
  kept = sent = upload_bytes = 0
  for name, clients in holders.items():
    rows = np.asarray(trained.rows[name])
    size = rows.shape[1]
    for c in clients:
      k = int(np.count_nonzero(rows[c]))
      kept += k
      upload_bytes += min(8 * k, 4 * k + math.ceil(size / 8), 4 * size)
    sent += len(clients) * size
    # Clients 2 and 3 never trained encoder_weak: their rows are zero.
    if name == 'encoder_weak':
      assert not rows[2:].any()
  np.testing.assert_allclose(metrics['comm/kept_fraction'], kept / sent,
                             rtol=1e-6)
  np.testing.assert_allclose(metrics['comm/upload_bytes'], upload_bytes,
                             rtol=1e-6)


def test_error_feedback_conserves_the_update():
  # Dense mean aggregation with error feedback: what a client withholds plus
  # what it sends is its whole update, so with fraction 1 nothing is withheld
  # and the round equals the same round without error feedback.
  apply_fn, params, train = _setup()
  cohort = fdata.sample_cohort(jax.random.key(1), train, 4, 4, 4)
  with_ef = _fedmchain(apply_fn, 6, rho=1.0,
                       aggregator=fmc.aggregators.weighted_mean())
  without = _fedmchain(apply_fn, 6, rho=1.0,
                       aggregator=fmc.aggregators.weighted_mean(),
                       error_feedback=False)
  a, _ = with_ef.run_cohort(with_ef.init(params), cohort, jax.random.key(2))
  b, _ = without.run_cohort(without.init(params), cohort, jax.random.key(2))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6),
               a.params, b.params)
  assert not any(np.asarray(v).any() for v in a.client_states.values())


def test_error_feedback_across_two_rounds_of_the_composed_round():
  # Round 2 encodes e = delta + r, r the residual round 1 stored for the
  # client (delta from the same round without error feedback); each round
  # stores r = e where e was not sent and 0 where it was, and the mean
  # aggregator's update is the weighted mean of the sent e - r.
  apply_fn, params, train = _setup()
  cohort = fdata.sample_cohort(jax.random.key(1), train, 4, 4, 4)
  ids = np.asarray(cohort.client_ids)
  weights = np.asarray(cohort.weights)
  mean = fmc.aggregators.weighted_mean()
  algorithm = _fedmchain(apply_fn, 6, rho=0.25, aggregator=mean)
  plain = _fedmchain(apply_fn, 6, rho=0.25, aggregator=mean,
                     error_feedback=False)
  train_ef, train_plain = (jax.jit(algorithm.train_cohort),
                           jax.jit(plain.train_cohort))
  run = jax.jit(algorithm.run_cohort)
  key = jax.random.key(2)
  state = algorithm.init(params)
  for round_index in range(2):
    assert set(state.client_states) == {'encoder_strong', 'encoder_weak',
                                        'classifier'}
    trained, _ = train_ef(state, cohort, key)
    deltas, _ = train_plain(state._replace(client_states={}), cohort, key)
    new_state, _ = run(state, cohort, key)
    for name, table in state.client_states.items():
      rows = np.asarray(trained.rows[name])
      np.testing.assert_array_equal(
          rows, np.asarray(deltas.rows[name]) + np.asarray(table)[ids])
      residual = np.asarray(new_state.client_states[name])[ids]
      withheld = residual != 0
      np.testing.assert_array_equal(residual, np.where(withheld, rows, 0.0))
      sent = rows - residual
      for c in range(4):
        assert np.abs(sent[c]).min(initial=np.inf, where=sent[c] != 0) >= (
            np.abs(residual[c]).max())
      if round_index == 1:
        assert withheld.any() and (sent != 0).any()
      others = np.setdiff1d(np.arange(6), ids)
      assert not np.asarray(new_state.client_states[name])[others].any()
      # Server SGD at rate 1: the parameters move by the weighted mean.
      keys = fmc.models.parameter_blocks(MODALITIES)[name][0]
      moved = fmc.blocks.flatten(jax.tree.map(
          lambda a, b: (a - b)[None], dict(new_state.params),
          dict(state.params)), keys, 1)[0]
      np.testing.assert_allclose(moved, weights @ sent / weights.sum(),
                                 rtol=1e-5, atol=1e-7)
    state = new_state
  assert int(state.round) == 2


def test_padding_client_changes_nothing_in_fedmchain():
  apply_fn, params, train = _setup()
  algorithm = _fedmchain(apply_fn, 6, error_feedback=False)
  state = algorithm.init(params)
  cohort = fdata.sample_cohort(jax.random.key(1), train, 4, 4, 4)
  padded = jax.tree.map(lambda x: jnp.concatenate([x, x[:1] * 3 + 1]), cohort)
  padded = padded._replace(weights=padded.weights.at[-1].set(0.0))
  run = jax.jit(algorithm.run_cohort)
  a, ma = run(state, cohort, jax.random.key(2))
  b, mb = run(state, padded, jax.random.key(2))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6),
               a.params, b.params)
  assert float(ma['comm/upload_bytes']) == float(mb['comm/upload_bytes'])
  assert float(ma['comm/kept_fraction']) == float(mb['comm/kept_fraction'])
  # Four real clients download the dense float32 model.
  model_bytes = 4 * sum(x.size for x in jax.tree.leaves(params))
  assert float(ma['comm/download_bytes']) == 4 * model_bytes
  assert float(mb['comm/download_bytes']) == 4 * model_bytes


@pytest.mark.parametrize('unit', [1.0, 0.1])
def test_ogm_ge_ratio_is_to_the_mean_of_the_other_present_modalities(unit):
  # Scores a = 6, b = 2, c = 4 (in units of `unit`, so the others' mean is
  # above and below 1): r_a = 6 / mean(2, 4) = 2 (dominant), r_b = 2 / 5,
  # r_c = 4 / 4 = 1 (not dominant: r must exceed 1). With c absent, r_a =
  # 6 / 2 = 3, and c is never dominant whatever its score. Alone, a has no
  # other modality to be compared with: not dominant.
  def coefficients(scores, present):
    return client._ogm_coefficients(
        tuple(scores), 0.5, {m: jnp.array(v * unit) for m, v in
                             scores.items()},
        {m: jnp.array(m in present) for m in scores})

  for scores, present, ratio_a in (({'a': 6, 'b': 2, 'c': 4}, 'abc', 2.0),
                                   ({'a': 6, 'b': 2, 'c': 40}, 'ab', 3.0)):
    result = coefficients(scores, present)
    dominant, coefficient = result['a']
    assert bool(dominant)
    np.testing.assert_allclose(coefficient, 1 - np.tanh(0.5 * ratio_a),
                               rtol=1e-6)
    assert not bool(result['b'][0]) and not bool(result['c'][0])
  assert not bool(coefficients({'a': 6, 'b': 2, 'c': 4}, 'a')['a'][0])


def test_ogm_ge_adds_generalization_noise_by_default():
  apply_fn, params, train = _setup()
  batches = _client_batches(train, 2)

  def trained(key=0, present=None, with_metrics=False, **noise):
    update = client.ogm_ge(apply_fn, MODALITIES, optax.sgd(0.5), 2, 0.5,
                           **noise).update
    if present is not None:  # The batches carry the mask OGM-GE reads.
      batch_present = {m: jnp.full((2,), v) for m, v in present.items()}
      inputs = {**batches, 'modality_mask': batch_present}
    else:
      inputs = batches
    out = jit(update)(params, inputs, {}, jax.random.key(key), 0)
    return out if with_metrics else out[0]

  # Noise draws from the key; without it the key is not read.
  default, noisy = trained(), trained(noise=True)
  jax.tree.map(np.testing.assert_array_equal, default, noisy)
  assert _changed(noisy, trained(noise=True, key=1))['encoder_strong']
  jax.tree.map(np.testing.assert_array_equal, trained(noise=False),
               trained(noise=False, key=1))
  # With one modality present none dominates: every coefficient is 1.
  _, metrics = trained(present={'strong': True, 'weak': False},
                       with_metrics=True)
  assert float(metrics['ogm/coefficient/strong']) == 1.0
  assert float(metrics['ogm/coefficient/weak']) == 1.0


def test_ogm_ge_scales_the_dominant_encoders_gradient_and_adds_its_noise():
  # One SGD step: the gradient g of the fused CE, with a dominant encoder's
  # gradient scaled by its coefficient c (`_ogm_coefficients` of the
  # confidences `_ogm_loss` measures) and, with noise, std(g) N(0, 1)
  # added per leaf.
  apply_fn, params, train = _setup()
  batches = _client_batches(train, 1)
  batch = jax.tree.map(lambda x: x[0], batches)
  lr = 0.5

  def stepped(noise):
    update = client.ogm_ge(apply_fn, MODALITIES, optax.sgd(lr), 1, 0.5,
                           noise).update
    return jit(update)(params, batches, {}, jax.random.key(0), 0)[0]

  grads, (_, scores) = jax.grad(client._ogm_loss(apply_fn), has_aux=True)(
      params, batch)
  coefficients = client._ogm_coefficients(MODALITIES, 0.5, scores,
                                          batch['modality_mask'])
  dominant = [m for m in MODALITIES if bool(coefficients[m][0])]
  assert len(dominant) == 1  # With two modalities, one ratio exceeds 1.
  encoder = f'encoder_{dominant[0]}'
  other = f'encoder_{[m for m in MODALITIES if m != dominant[0]][0]}'
  scale = float(coefficients[dominant[0]][1])
  assert 0.0 < scale < 0.9
  quiet = stepped(False)
  for name, grad in grads.items():
    factor = scale if name == encoder else 1.0
    jax.tree.map(lambda new, old, g, f=factor: np.testing.assert_allclose(
        new, old - lr * f * g, rtol=1e-5, atol=1e-6),
                 quiet[name], params[name], grad)
  # The noise, in units of each leaf's gradient spread, is about N(0, 1).
  noisy = stepped(True)
  kernel = grads[encoder]['Dense_0']['kernel']
  noise = (np.asarray(quiet[encoder]['Dense_0']['kernel']) -
           np.asarray(noisy[encoder]['Dense_0']['kernel'])) / (
               lr * float(jnp.std(kernel)))
  assert noise.size == 256
  assert abs(noise.mean()) < 0.3 and 0.8 < noise.std() < 1.2
  jax.tree.map(np.testing.assert_array_equal, noisy[other], quiet[other])


def test_ogm_ge_damps_the_dominant_modality():
  apply_fn, params, train = _setup(num_clients=6)
  algorithm = fmc.algorithms.fedavg_ogm_ge(
      apply_fn, MODALITIES, optax.sgd(0.1), optax.sgd(1.0), 10, 6, 8,
      alpha=0.5)
  run = jax.jit(algorithm.run_round)
  state = algorithm.init(params)
  for _ in range(10):
    state, metrics = run(state, train, jax.random.key(0))
  strong = float(metrics['train/ogm/coefficient/strong'])
  weak = float(metrics['train/ogm/coefficient/weak'])
  # 'strong' is the confident one: its gradient is scaled down far more often
  # and further (averages over clients and steps; early steps can go either
  # way).
  assert strong < 0.6 and weak > strong + 0.2


def test_fedmchain_lifts_the_weak_modality(tmp_path):
  # Shrunken study on the embedded data, equal rounds and local work: the
  # weak head alone is far better under fedmchain than under fedavg (about
  # 0.54 vs 0.25 at this size).
  from tests.test_launcher import tiny_config
  from experiments import train as runner
  accuracy = {}
  for algorithm in ('fedavg', 'fedmchain'):
    config = tiny_config(algorithm=algorithm, **{
        'data.num_clients': 20, 'data.examples_per_client': 32,
        'data.num_test': 500, 'model.hidden': (32,), 'rounds.num_rounds': 30,
        'rounds.cohort_size': 10, 'rounds.eval_every': 30,
        'rounds.checkpoint_every': 30, 'client.num_local_steps': 10,
        'client.steps_per_phase': 5, 'client.batch_size': 16})
    record = runner.train_and_evaluate(config, str(tmp_path / algorithm))[-1]
    accuracy[algorithm] = record
  assert (accuracy['fedmchain']['eval/accuracy/weak'] >
          accuracy['fedavg']['eval/accuracy/weak'] + 0.1)
  assert (accuracy['fedmchain']['comm/upload_bytes'] <
          0.3 * accuracy['fedavg']['comm/upload_bytes'])


def test_a_chain_of_bad_orders_or_an_unknown_regularizer_is_refused():
  ok = (lambda p, f, m=None, o=None: None, ('a', 'b'), optax.sgd(0.1), 1)
  with pytest.raises(ValueError, match=r'^a chain order must name every '
                     r"modality once: \('a', 'a'\) vs \('a', 'b'\)$"):
    fmc.client.chain(*ok, [('a', 'b'), ('a', 'a')])
  with pytest.raises(ValueError, match=r"^regularizer must be one of "
                     r"\('boost', 'reweight'\), got 'bost'$"):
    fmc.client.chain(*ok, [('a', 'b')], fmc.client.Regularizer('bost'))


def test_ogm_ge_confidence_sums_the_real_examples_only():
  # z_a = [ln 3, 0], z_b = [0, 0], label 0: softmax(z)_y = 3/4 and 1/2 for
  # each example; the second example is padding (mask False).
  params = {'head_a': {'z': jnp.array([math.log(3), 0.0])},
            'head_b': {'z': jnp.zeros(2)}}
  batch = {'features': {'a': jnp.zeros((2, 1)), 'b': jnp.zeros((2, 1))},
           'label': jnp.array([0, 0]), 'mask': jnp.array([True, False]),
           'modality_mask': {'a': jnp.array(True), 'b': jnp.array(True)}}
  _, (_, scores) = client._ogm_loss(logits_model)(params, batch)
  np.testing.assert_allclose(scores['a'], 0.75, rtol=1e-6)
  np.testing.assert_allclose(scores['b'], 0.5, rtol=1e-6)


def test_an_apply_fn_of_the_wrong_arity_is_refused_when_built():
  import re
  wrong = lambda params, features, mask: None
  message = ('chain calls apply_fn(params, features, modality_mask, only) -> '
             '(fused logits, {modality: logits}); the apply_fn given takes '
             '(params, features, mask)')
  with pytest.raises(TypeError, match='^' + re.escape(message) + '$'):
    fmc.client.chain(wrong, ('a', 'b'), optax.sgd(0.1), 1, [('a', 'b')])
  with pytest.raises(TypeError, match='^ogm_ge calls apply_fn'):
    fmc.client.ogm_ge(wrong, ('a', 'b'), optax.sgd(0.1), 1, 0.5)
  # Defaults count: (params, features, modality_mask=None, only=None) is fine.
  fmc.client.chain(lambda p, f, m=None, o=None: None, ('a', 'b'),
                   optax.sgd(0.1), 1, [('a', 'b')])
