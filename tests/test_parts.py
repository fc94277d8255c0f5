"""The round's parts: robust aggregators, and a user's own parts plugged in."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedmchain_jax as fmc
from tests import common


def _message(values, kept=None):
  values = jnp.asarray(values, jnp.float32)
  size = values.shape[0]
  return fmc.uploads.Message(values, jnp.zeros(size, jnp.float32),
                             kept if kept is not None else
                             jnp.full(size, values.shape[1], jnp.int32))


def _senders(seed):
  rng = np.random.default_rng(seed)
  values = rng.standard_normal((7, 30)).astype(np.float32)
  values[values < -1.0] = 0.0  # Entries a client did not send.
  values[5] = 1e6  # An attacker.
  weights = np.array([1, 2, 0, 1, 3, 1, 1], np.float32)  # Client 2: silent.
  holders = np.array([True, True, True, True, True, True, False])
  senders = holders & (weights > 0)
  return values, weights, holders, senders


@pytest.mark.parametrize('seed', [0, 1])
def test_coordinate_median_is_the_median_of_the_senders(seed):
  values, weights, holders, senders = _senders(seed)
  aggregator = fmc.aggregators.coordinate_median()
  update, metrics = jax.jit(aggregator.aggregate, static_argnums=3)(
      _message(values), weights, holders, fmc.placement.Placement())
  # Senders 0, 1, 3, 4, 5: the attacker's 1e6 is the largest of five.
  np.testing.assert_allclose(update, np.median(values[senders], axis=0),
                             rtol=1e-6)
  assert float(jnp.abs(update).max()) < 10 and metrics == {}


@pytest.mark.parametrize('trim,cut', [(0.0, 0), (0.2, 1), (0.45, 2)])
def test_trimmed_mean_drops_floor_trim_h_from_each_end(trim, cut):
  values, weights, holders, senders = _senders(3)
  aggregator = fmc.aggregators.trimmed_mean(trim)
  update, _ = jax.jit(aggregator.aggregate, static_argnums=3)(
      _message(values), weights, holders, fmc.placement.Placement())
  ordered = np.sort(values[senders], axis=0)  # h = 5 senders.
  expected = ordered[cut:5 - cut].mean(axis=0)
  np.testing.assert_allclose(update, expected, rtol=1e-5)
  if cut:
    assert float(jnp.abs(update).max()) < 10  # The attacker is cut.


def test_robust_aggregators_give_zero_where_nobody_sends():
  values = np.ones((3, 4), np.float32)
  weights = np.zeros(3, np.float32)
  holders = np.ones(3, bool)
  for aggregator in (fmc.aggregators.coordinate_median(),
                     fmc.aggregators.trimmed_mean(0.2)):
    update, _ = aggregator.aggregate(_message(values), weights, holders,
                                     fmc.placement.Placement())
    np.testing.assert_array_equal(update, np.zeros(4))
  with pytest.raises(ValueError, match=r'trim must be in \[0, 0.5\), got 0.5'):
    fmc.aggregators.trimmed_mean(0.5)


def _fedavg_parts(apply_fn, aggregator, upload=None, chunk_size=None):
  return fmc.algorithms.compose(
      fmc.client.joint(fmc.losses.fused_classification_loss(apply_fn),
                       optax.sgd(0.1), num_steps=4),
      upload or fmc.uploads.identity(), aggregator, optax.sgd(1.0),
      cohort_size=6, batch_size=8,
      placement=fmc.placement.Placement(chunk_size=chunk_size))


def test_a_user_aggregator_runs_inside_the_jitted_round():
  # A weighted mean written by a user against the interface alone: the
  # round is the built-in one, bit for bit, and its metric is reported per
  # block.
  apply_fn, params, train = common.synthetic_setup(10, 16, (8,))
  traced = []

  def aggregate(message, weights, holders, placement):
    del holders, placement
    traced.append(message.rows.shape)
    values = message.values()
    total = weights.sum()
    mean = jnp.einsum('c,cp->p', weights, values) / total
    return mean, {'mine/largest': jnp.abs(values).max()}

  mine = _fedavg_parts(apply_fn, fmc.aggregators.Aggregator(aggregate))
  builtin = _fedavg_parts(apply_fn, fmc.aggregators.weighted_mean())
  key = jax.random.key(0)
  results = []
  for algorithm in (mine, builtin):
    state = algorithm.init(params)
    run = jax.jit(algorithm.run_round)
    for _ in range(2):
      state, metrics = run(state, train, key)
    results.append((state, metrics))
  size = sum(x.size for x in jax.tree.leaves(params))
  assert traced == [(6, size)]  # Traced once, the whole model one block.
  assert float(results[0][1]['mine/model/largest']) > 0
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               results[0][0].params, results[1][0].params)
  # The robust aggregators plug in the same way and train.
  for aggregator in (fmc.aggregators.coordinate_median(),
                     fmc.aggregators.trimmed_mean(0.2)):
    algorithm = _fedavg_parts(apply_fn, aggregator)
    state = algorithm.init(params)
    run = jax.jit(algorithm.run_round)
    losses = []
    for _ in range(8):
      state, metrics = run(state, train, key)
      losses.append(float(metrics['train/loss']))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_a_user_upload_with_its_own_state_plugs_in():
  # Scaled signs with error feedback (EF-signSGD): each client sends
  # sign(e_c) * mean|e_c| and keeps the rest; the residual table lives in
  # ServerState.client_states like the built-in one.
  apply_fn, params, train = common.synthetic_setup(10, 16, (8,))

  def init(block_size):
    return jnp.zeros((10, block_size), jnp.float32)

  def prepare(rows, sending, state, ids):
    return jnp.where(sending[:, None], rows, 0.0) + state[ids]

  def encode(rows, holders, keys):
    del keys
    scale = jnp.abs(rows).mean(axis=1, keepdims=True)
    sent = jnp.where(holders[:, None], jnp.sign(rows) * scale, 0.0)
    kept = jnp.where(holders, rows.shape[1], 0).astype(jnp.int32)
    return fmc.uploads.Message(sent, jnp.where(holders, 0.0, jnp.inf), kept)

  def store(state, ids, rows, message):
    return state.at[ids].set(rows - message.values(), mode='drop')

  upload = fmc.uploads.Upload(init, prepare, encode, store)
  results = []
  for chunk_size in (None, 4):
    algorithm = _fedavg_parts(apply_fn, fmc.aggregators.weighted_mean(),
                              upload, chunk_size)
    state = algorithm.init(params)
    assert set(state.client_states) == {'model'}
    state, metrics = jax.jit(
        algorithm.run_round,
        compiler_options=fmc.determinism.compiler_options())(
            state, train, jax.random.key(0))
    assert int(metrics['clients/participating']) == 6
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                         state.params, params)
    assert max(jax.tree.leaves(moved)) > 0
    # Six clients' residuals are stored, the others' rows stay zero; a
    # client's residual plus what it sent is its e_c, so it is not zero.
    residuals = np.asarray(state.client_states['model'])
    assert (np.abs(residuals).sum(axis=1) > 0).sum() == 6
    results.append(state)
  # Chunked local training prepares the rows per chunk: the same round.
  jax.tree.map(np.testing.assert_array_equal, *results)


# Three toy clients, one 4-entry block, weights n = (1, 1, 3). With rho 0.5
# each sends its 2 largest entries:
#   client 0 sends {0: +4, 1: +3}, client 1 {0: +2, 2: -5},
#   client 2 {2: +0.3, 3: +6}.
_TOY_ROWS = np.array([[4.0, 3.0, 0.1, 0.2],
                      [2.0, 0.0, -5.0, 0.3],
                      [-0.1, 0.2, 0.3, 6.0]], np.float32)
_TOY_WEIGHTS = np.array([1.0, 1.0, 3.0], np.float32)
# The dense weighted mean of the rows: (r0 + r1 + 3 r2) / 5.
_TOY_DENSE = (_TOY_ROWS * _TOY_WEIGHTS[:, None]).sum(0) / 5.0


def _toy_round(upload, aggregator):
  algorithm = fmc.algorithms.compose(
      fmc.client.ClientUpdate(lambda params, *args: (params, {}), 1),
      upload, fmc.aggregators.with_metrics(aggregator), optax.sgd(1.0),
      cohort_size=3, batch_size=1)
  params = {'w': jnp.zeros(4)}
  cohort = fmc.data.federated.Cohort(
      client_ids=jnp.arange(3), features={},
      labels=jnp.zeros((3, 1, 1), jnp.int32),
      example_mask=jnp.ones((3, 1, 1), bool), modality_mask={},
      weights=jnp.asarray(_TOY_WEIGHTS))
  state = algorithm.init(params)
  new_state, metrics = jax.jit(algorithm.aggregate)(
      state, cohort, {'w': jnp.asarray(_TOY_ROWS)}, {}, jax.random.key(0))
  return new_state.params['w'], jax.device_get(metrics)  # w0 = 0, lr 1.


@pytest.mark.parametrize('max_groups', [1, 4])
def test_aggregation_metrics_of_ssca_on_three_toy_clients(max_groups):
  update, metrics = _toy_round(fmc.uploads.top_fraction(0.5),
                               fmc.aggregators.ssca(0.0, max_groups,
                                                    normalize='senders'))
  # Senders per coordinate: 2, 1, 2, 1 -> mean 1.5, half of them alone.
  assert metrics['agg/model/senders'] == pytest.approx(1.5)
  assert metrics['agg/model/single_sender'] == pytest.approx(0.5)
  # Agreement on common support: a_01 = +1 (coordinate 0), a_12 = -1
  # (coordinate 2), a_02 has none (0): groups {0, 1} (W = 2) and {2} (3).
  if max_groups == 1:  # Only {2} kept: U is client 2's upload.
    expected = np.array([0.0, 0.0, 0.3, 6.0])
    assert metrics['agg/model/groups'] == 1
    assert metrics['agg/model/clients_kept'] == pytest.approx(1 / 3)
    assert metrics['agg/model/weight_kept'] == pytest.approx(3 / 5)
  else:  # U = (2 U_01 + 3 U_2) / 5 with U_01 = ((4 + 2) / 2, 3, -5, 0).
    expected = np.array([2 * 3.0, 2 * 3.0, 2 * -5.0 + 3 * 0.3, 3 * 6.0]) / 5
    assert metrics['agg/model/groups'] == 2
    assert metrics['agg/model/clients_kept'] == pytest.approx(1.0)
    assert metrics['agg/model/weight_kept'] == pytest.approx(1.0)
  np.testing.assert_allclose(update, expected, rtol=1e-6)
  assert metrics['agg/model/norm_ratio'] == pytest.approx(
      np.linalg.norm(expected) / np.linalg.norm(_TOY_DENSE), rel=1e-6)
  # Each sends 2 values: the cheaper of 2 x 8 bytes (positions) and
  # 2 x 4 + 1 (a 4-bit bitmap in one byte) is 9; download: 3 x 16 bytes.
  assert metrics['comm/upload_bytes'] == 27.0
  assert metrics['comm/download_bytes'] == 48.0
  assert metrics['comm/kept_fraction'] == pytest.approx(0.5)


def test_bytes_and_metrics_of_dense_and_sparse_uploads_on_the_mean():
  update, metrics = _toy_round(fmc.uploads.top_fraction(0.5),
                               fmc.aggregators.weighted_mean())
  expected = np.array([4 + 2, 3, -5 + 3 * 0.3, 3 * 6.0]) / 5
  np.testing.assert_allclose(update, expected, rtol=1e-6)
  assert metrics['agg/model/norm_ratio'] == pytest.approx(
      np.linalg.norm(expected) / np.linalg.norm(_TOY_DENSE), rel=1e-6)
  # The dense upload: clients 0 and 2 send 4 values (16 bytes); client 1's
  # row has a zero, so it sends 3 values and a bitmap: 12 + 1 bytes.
  update, metrics = _toy_round(fmc.uploads.identity(),
                               fmc.aggregators.weighted_mean())
  np.testing.assert_allclose(update, _TOY_DENSE, rtol=1e-6)
  assert metrics['comm/upload_bytes'] == 16 + 13 + 16
  assert metrics['agg/model/norm_ratio'] == pytest.approx(1.0)
  # Coordinate 1 has two senders (client 1's 0 is not sent): 11 / 4.
  assert metrics['agg/model/senders'] == pytest.approx(11 / 4)
  assert metrics['agg/model/single_sender'] == 0.0
  assert 'agg/model/groups' not in metrics


def test_ssca_normalized_by_group_members_on_three_toy_clients():
  # Groups {0, 1} (W = 2) and {2} (W = 3), every sent entry agreeing with
  # its group's sign: each coordinate is divided by the group's weight, not
  # its senders', so U is the weighted mean of what was sent.
  update, metrics = _toy_round(fmc.uploads.top_fraction(0.5),
                               fmc.aggregators.ssca(0.0, 4,
                                                    normalize='members'))
  np.testing.assert_allclose(update, [6 / 5, 3 / 5, (-5 + 0.9) / 5, 18 / 5],
                             rtol=1e-6)
  assert metrics['agg/model/groups'] == 2
  with pytest.raises(ValueError, match="normalize must be one of"):
    fmc.aggregators.ssca(normalize='all')


def test_error_feedback_sends_delta_plus_residual_two_rounds_by_hand():
  # Top 2 of 8 entries (rho = 0.25) for clients 2 and 0 of N = 3; client 1
  # sits both rounds out. e_c = delta_c + r_c, x_c = e_c [|e_c| >= t_c],
  # r_c <- e_c - x_c, entry by entry (t_c is the message's threshold: the
  # search may keep a little more than k on so short a row).
  upload = fmc.uploads.top_fraction(0.25, error_feedback=True, num_clients=3)
  ids = jnp.array([2, 0], jnp.int32)
  keys = jax.random.split(jax.random.key(0), 2)
  deltas = [np.array([[8, -7, 6, 5, 1, -2, 0.5, 0],
                      [0, 0, 0, 0, 0, 0, 2, -3]], np.float32),
            np.array([[2.5, 1.5, 6, -4.25, 0, 0, 0, 3],
                      [5, -6, 7, 0, 0, 0, 0, 0]], np.float32)]

  @jax.jit
  def one_round(table, delta, sending=jnp.ones(2, bool)):
    rows = upload.prepare(delta, sending, table, ids)
    message = upload.encode(rows, sending, keys)
    return upload.store(table, ids, rows, message), rows, message

  table = upload.init(8)
  residual = np.zeros((3, 8), np.float32)
  for delta in deltas:
    table, rows, message = one_round(table, jnp.asarray(delta))
    expected_rows = delta + residual[[2, 0]]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(message.rows, expected_rows)
    threshold = np.asarray(message.threshold)[:, None]
    sent = np.where((np.abs(expected_rows) >= threshold) &
                    (expected_rows != 0), expected_rows, 0.0)
    np.testing.assert_array_equal(message.values(), sent)
    np.testing.assert_array_equal(message.kept, (sent != 0).sum(axis=1))
    # The two largest magnitudes always go.
    top = np.argsort(-np.abs(expected_rows), axis=1)[:, :2]
    assert np.all(np.take_along_axis(sent, top, axis=1) != 0)
    residual[[2, 0]] = expected_rows - sent
    np.testing.assert_array_equal(table, residual)
  # By hand: client 0 sent both entries of round 1 (2 <= k non-zeros) and
  # withholds 5 of round 2; client 2 withheld 6, 5, 1, -2, 0.5 in round 1,
  # which its round-2 row carries; client 1 never changes.
  np.testing.assert_array_equal(residual[0], [5, 0, 0, 0, 0, 0, 0, 0])
  assert not residual[1].any()
  np.testing.assert_array_equal(rows[0], [2.5, 1.5, 12, 0.75, 1, -2, 0.5, 3])
  # Round 3: client 2 is silent (weight 0, e.g. dropped): it sends nothing,
  # its delta is not counted, and it keeps its residual as it was.
  after, _, message = one_round(table, jnp.ones((2, 8), jnp.float32),
                                jnp.array([False, True]))
  assert not np.asarray(message.values())[0].any()
  np.testing.assert_array_equal(np.asarray(after)[2], residual[2])


def test_uploads_count_nothing_for_clients_that_do_not_hold_the_block():
  rows = jnp.array([[1.0, 0.0, -2.0, 3.0], [4.0, 5.0, 0.0, 6.0]])
  holders = jnp.array([True, False])
  keys = jax.random.split(jax.random.key(0), 2)
  for upload in (fmc.uploads.identity(), fmc.uploads.top_fraction(1.0),
                 fmc.uploads.top_fraction(0.5)):
    message = upload.encode(rows, holders, keys)
    assert int(message.kept[1]) == 0
    assert not np.asarray(message.values())[1].any()
  # The default share is a tenth.
  row = jnp.arange(1.0, 1001.0)[None]
  message = fmc.uploads.top_fraction().encode(row, jnp.ones(1, bool),
                                              keys[:1])
  assert abs(int(message.kept[0]) - 100) <= 2


@pytest.mark.parametrize('senders', [1, 2, 4, 6])
def test_coordinate_median_of_one_or_an_even_number_of_senders(senders):
  # The one sender's value, or the mean of the middle two; the silent
  # client and the non-holder (the last two rows) are not among them.
  rng = np.random.default_rng(senders)
  values = np.concatenate([rng.normal(size=(senders, 5)),
                           np.full((2, 5), 100.0)]).astype(np.float32)
  weights = np.array([1.0] * senders + [0.0, 1.0], np.float32)
  holders = np.array([True] * (senders + 1) + [False])
  update, _ = fmc.aggregators.coordinate_median().aggregate(
      _message(values), weights, holders, fmc.placement.Placement())
  np.testing.assert_allclose(update, np.median(values[:senders], axis=0),
                             rtol=1e-6)


def _five_sign_clusters():
  """Ten dense rows in five sign patterns, two clients each: A, -A, B and
  -B (B agrees with A on half the coordinates: agreement 0) and E (0 with
  both), weights 5, 2, 3, 1 and 0.5 a client. tau 0 links only within a
  pattern (5 groups), tau -1 links every pattern through the zeros (1
  group), tau 1 none (10 singletons); G picks how many are kept."""
  a = np.ones(8)
  b = np.array([1, 1, 1, 1, -1, -1, -1, -1.0])
  e = np.array([1, -1, 1, -1, 1, -1, 1, -1.0])
  patterns = [a, -a, b, -b, e]
  magnitude = np.arange(1, 9) / 8
  rows = np.stack([sign * magnitude * (1 + 0.1 * i + 0.05 * copy)
                   for i, sign in enumerate(patterns) for copy in range(2)])
  weights = np.repeat([5.0, 2.0, 3.0, 1.0, 0.5], 2)
  return rows.astype(np.float32), weights.astype(np.float32)


def test_ssca_defaults_are_the_documented_method():
  # tau 0, G = 4, weighted combination, the members' mean (docs/
  # algorithm.md): the defaults give those, on a cohort where each other
  # value of tau or G gives another update.
  placement = fmc.placement.Placement()
  rows, weights = _five_sign_clusters()
  holders = np.ones(len(rows), bool)
  run = lambda aggregator: np.asarray(aggregator.aggregate(
      _message(rows), weights, holders, placement)[0])
  default = run(fmc.aggregators.ssca())
  np.testing.assert_array_equal(default, run(fmc.aggregators.ssca(
      0.0, 4, 'weighted', normalize='members')))
  for other in (dict(tau=1.0), dict(tau=-1.0), dict(max_groups=3),
                dict(max_groups=5), dict(combine='largest')):
    assert not np.allclose(default, run(fmc.aggregators.ssca(**other)),
                           atol=1e-4), other


def test_agreement_row_groups_below_one_are_refused():
  with pytest.raises(ValueError, match='agreement_row_groups must be None or '
                     'at least 1, got 0'):
    fmc.aggregators.ssca(row_groups=0)
  fmc.aggregators.ssca(row_groups=1)
  fmc.aggregators.ssca(row_groups=None)


def test_aggregation_metrics_count_the_senders_only():
  # Two opposed senders of weights 0.5 and 0.25 (two groups, every entry
  # below 1: norms below 1), then a padding client (weight 0) and a client
  # that does not hold the block, both with rows that must not count: the
  # update and every metric are the two senders' alone.
  senders = np.array([[0.02, 0.04, 0.0, 0.0], [-0.01, -0.03, 0.05, 0.0]],
                     np.float32)
  others = np.array([[0.5, -0.5, 0.5, 0.5], [0.7, 0.7, -0.7, 0.7]],
                    np.float32)
  aggregator = fmc.aggregators.with_metrics(fmc.aggregators.ssca(0.0, 4))
  placement = fmc.placement.Placement()
  alone = aggregator.aggregate(_message(senders),
                               np.array([0.5, 0.25], np.float32),
                               np.ones(2, bool), placement)
  among = aggregator.aggregate(
      _message(np.concatenate([senders, others])),
      np.array([0.5, 0.25, 0.0, 1.0], np.float32),
      np.array([True, True, True, False]), placement)
  np.testing.assert_array_equal(alone[0], among[0])
  assert jax.device_get(alone[1]) == jax.device_get(among[1])
  metrics = jax.device_get(alone[1])
  assert metrics['agg/groups'] == 2
  assert metrics['agg/clients_kept'] == 1.0
  assert metrics['agg/weight_kept'] == 1.0
  # Coordinates 0 and 1 have two senders, 2 one, 3 none (not counted).
  assert metrics['agg/senders'] == pytest.approx(5 / 3)
  assert metrics['agg/single_sender'] == pytest.approx(1 / 3)
  # Every coordinate of one group (members' mean) and the other: the SSCA
  # update is the weighted mean of the rows here, so the ratio is 1.
  assert metrics['agg/norm_ratio'] == pytest.approx(1.0, rel=1e-6)
  # One sender among non-senders: all of the senders are kept.
  one = aggregator.aggregate(_message(np.concatenate([senders[:1], others])),
                             np.array([0.5, 0.0, 1.0], np.float32),
                             np.array([True, True, False]), placement)
  assert float(one[1]['agg/clients_kept']) == 1.0
  assert float(one[1]['agg/weight_kept']) == 1.0
  assert int(one[1]['agg/groups']) == 1
  # One coordinate sent, by one client.
  single = aggregator.aggregate(
      _message(np.array([[0.0, 0.3, 0.0, 0.0]], np.float32)),
      np.array([0.5], np.float32), np.ones(1, bool), placement)[1]
  assert float(single['agg/senders']) == 1.0
  assert float(single['agg/single_sender']) == 1.0
  # Nobody sends: every metric 0, none NaN.
  nobody = jax.device_get(aggregator.aggregate(
      _message(others), np.array([0.0, 1.0], np.float32),
      np.array([True, False]), placement))
  np.testing.assert_array_equal(nobody[0], np.zeros(4))
  assert all(float(v) == 0.0 for v in nobody[1].values()), nobody[1]


def test_trimmed_mean_default_cuts_a_tenth_from_each_end():
  values, weights, holders, senders = _senders(4)
  values = np.concatenate([values, values[:5] + 0.5])  # 10 senders.
  weights = np.concatenate([weights, np.ones(5, np.float32)])
  holders = np.concatenate([holders, np.ones(5, bool)])
  run = lambda aggregator: aggregator.aggregate(
      _message(values), weights, holders, fmc.placement.Placement())[0]
  np.testing.assert_array_equal(run(fmc.aggregators.trimmed_mean()),
                                run(fmc.aggregators.trimmed_mean(0.1)))
  ordered = np.sort(values[holders & (weights > 0)], axis=0)
  assert len(ordered) == 10  # floor(0.1 x 10) = 1 cut from each end.
  np.testing.assert_allclose(run(fmc.aggregators.trimmed_mean()),
                             ordered[1:9].mean(axis=0), rtol=1e-5)
  with pytest.raises(ValueError, match=r'trim must be in \[0, 0.5\), got '
                     r'-0.1'):
    fmc.aggregators.trimmed_mean(-0.1)


def test_each_client_trains_with_its_key_from_the_rounds_training_key():
  # A client update that adds noise drawn from its key: the cohort's deltas
  # are the draws from fold_in(round_keys(key, round)[1], client id), the
  # training key of the round, not its sampling key.
  def noisy(params, batches, present, key, round_index):
    del batches, present, round_index
    return jax.tree.map(lambda p: p + jax.random.uniform(key, p.shape),
                        params), {}

  algorithm = fmc.algorithms.compose(
      fmc.client.ClientUpdate(noisy, 1), fmc.uploads.identity(),
      fmc.aggregators.weighted_mean(), optax.sgd(1.0), cohort_size=3,
      batch_size=1)
  params = {'w': jnp.zeros(4)}
  ids = jnp.array([7, 2, 5])
  cohort = fmc.data.federated.Cohort(
      client_ids=ids, features={}, labels=jnp.zeros((3, 1, 1), jnp.int32),
      example_mask=jnp.ones((3, 1, 1), bool), modality_mask={},
      weights=jnp.ones(3))
  state = algorithm.init(params)._replace(round=jnp.asarray(4, jnp.int32))
  key = jax.random.key(11)
  trained, _ = jax.jit(algorithm.train_cohort)(state, cohort, key)
  train_key = fmc.algorithms.base.round_keys(key, 4)[1]
  expected = jnp.stack([jax.random.uniform(jax.random.fold_in(train_key, i),
                                           (4,)) for i in (7, 2, 5)])
  (rows,) = trained.rows.values()
  np.testing.assert_array_equal(rows, expected)
  # The whole round samples the cohort with the sampling key and trains
  # with the training key: with every client of a population of three in
  # the cohort, the server step (SGD at rate 1 on the weighted mean) adds
  # the weighted mean of their draws.
  population = fmc.data.FederatedData(
      features={}, labels=jnp.zeros((3, 2), jnp.int32),
      example_mask=jnp.ones((3, 2), bool), modality_mask={},
      weights=jnp.array([1.0, 2.0, 3.0]))
  new_state, _ = jax.jit(algorithm.run_round)(state, population, key)
  draws = jnp.stack([jax.random.uniform(jax.random.fold_in(train_key, i),
                                        (4,)) for i in range(3)])
  np.testing.assert_allclose(new_state.params['w'],
                             jnp.array([1.0, 2.0, 3.0]) @ draws / 6.0,
                             rtol=1e-6)
