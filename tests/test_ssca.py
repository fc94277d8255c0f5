"""SSCA and top-fraction sparsification against NumPy references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedmchain_jax import aggregators
from fedmchain_jax import blockwise
from fedmchain_jax import compression
from fedmchain_jax import ssca
from fedmchain_jax import uploads


def sparsify(x, rho, key):
  """One vector through the round's top-fraction upload: (values, kept)."""
  message = uploads.top_fraction(rho).encode(x[None], jnp.ones(1, bool),
                                             key[None])
  return uploads.Message(message.values()[0], None, message.kept[0])


def reference_ssca(values, weights, holders, tau, max_groups, combine):
  """Loops and breadth-first search, written independently of ssca.py."""
  size = values.shape[0]
  active = holders & (weights > 0)
  signs = np.sign(values) * active[:, None]
  agree = signs @ signs.T
  overlap = np.abs(signs) @ np.abs(signs).T
  agreement = np.where(overlap > 0, agree / np.maximum(overlap, 1), 0.0)
  labels = np.full(size, size)
  for start in range(size):
    if not active[start] or labels[start] != size:
      continue
    labels[start], frontier = start, [start]
    while frontier:
      i = frontier.pop()
      for j in range(size):
        if (j != i and active[j] and labels[j] == size
            and agreement[i, j] > tau):
          labels[j] = start
          frontier.append(j)
  components = sorted({l for l in labels if l < size},
                      key=lambda l: (-weights[labels == l].sum(), l))
  kept = components[:max_groups]
  merged, group_weights = [], []
  for label in kept:
    members = np.flatnonzero(labels == label)
    mass = sum(weights[c] * values[c] for c in members)
    elected = np.sign(mass)
    numerator = np.zeros(values.shape[1])
    denominator = np.zeros(values.shape[1])
    for c in members:
      agrees = values[c] * elected > 0
      numerator += weights[c] * values[c] * agrees
      denominator += weights[c] * agrees
    merged.append(np.where(denominator > 0,
                           numerator / np.maximum(denominator, 1e-30), 0.0))
    group_weights.append(weights[members].sum())
  if combine == 'largest':
    update = merged[0]
  else:
    update = sum(g * u for g, u in zip(group_weights, merged)) / sum(
        group_weights)
  return agreement, labels, kept, update


def clustered_updates(seed, size=7, dim=40):
  """Sparse updates from two clusters of opposite direction."""
  rng = np.random.default_rng(seed)
  base = rng.normal(size=dim)
  cluster = rng.integers(0, 2, size)
  values = np.where(cluster[:, None] == 0, base, -base) * np.abs(
      rng.normal(size=(size, dim)))
  values += 0.3 * rng.normal(size=(size, dim))  # Some disagreement.
  values *= rng.random((size, dim)) < 0.4  # Sparse supports.
  weights = rng.uniform(1, 10, size)
  weights[3] = 0.0  # A padding client.
  holders = np.ones(size, bool)
  holders[5] = False  # A client without this block.
  return values.astype(np.float32), weights.astype(np.float32), holders


@pytest.mark.parametrize('seed, tau, max_groups, combine', [
    (s, t, g, c) for s, t, g, c in itertools.product(
        [0, 1, 2], [-0.5, 0.0, 0.4], [1, 2, 7], ['weighted', 'largest'])
])
def test_ssca_matches_numpy(seed, tau, max_groups, combine):
  values, weights, holders = clustered_updates(seed)
  result = jax.jit(ssca.ssca, static_argnums=(3, 4, 5))(
      values, weights, holders, tau, max_groups, combine)
  agreement, labels, kept, update = reference_ssca(
      values, weights, holders, tau, max_groups, combine)
  active = holders & (weights > 0)
  np.testing.assert_allclose(
      np.asarray(result.agreement)[np.ix_(active, active)],
      agreement[np.ix_(active, active)], atol=1e-6)
  np.testing.assert_array_equal(result.labels, labels)
  kept_members = np.asarray(result.membership)[:len(kept)]
  for row, label in zip(kept_members, kept):
    np.testing.assert_array_equal(row, labels == label)
  assert not np.asarray(result.membership)[len(kept):].any()
  np.testing.assert_allclose(result.update, update, rtol=1e-5, atol=1e-6)


def test_two_opposed_clusters_form_two_groups():
  values, weights, holders = clustered_updates(0)
  result = ssca.ssca(values, weights, holders, 0.3, 4, 'weighted')
  assert int((np.asarray(result.group_weights) > 0).sum()) == 2


def test_elected_sign_and_disjoint_mean_by_hand():
  # One group (tau -2 links every pair), unit weights. Coordinate 0: +2, +4
  # and -1: mass +5, elected +, mean of the agreeing entries 3. Coordinate 1:
  # -3 and +1: mass -2, elected -, only -3 agrees. Coordinate 2: nobody
  # sent anything: 0.
  values = np.array([[2.0, -3.0, 0.0], [4.0, 0.0, 0.0], [-1.0, 1.0, 0.0]],
                    np.float32)
  weights = np.array([1.0, 2.0, 1.0], np.float32)
  result = ssca.ssca(values, np.array([1.0, 1.0, 1.0], np.float32),
                     np.ones(3, bool), -2.0, 1)
  np.testing.assert_allclose(result.update, [3.0, -3.0, 0.0])
  weighted = ssca.ssca(values, weights, np.ones(3, bool), -2.0, 1)
  # Weights (1, 2, 1). Coordinate 0: mass 2 + 8 - 1 > 0, agreeing entries
  # 2 (w 1) and 4 (w 2): (2 + 8) / 3. Coordinate 1: mass -3 + 1 < 0: -3.
  np.testing.assert_allclose(weighted.update, [10 / 3, -3.0, 0.0], rtol=1e-6)


def test_agreement_over_one_shared_entry_and_over_none():
  # Clients 0 and 1 share one sent coordinate (same sign): agreement 1.
  # Client 2 shares none with either: agreement 0, not 0 / 0.
  values = np.array([[1.0, 0.0, 2.0, 0.0], [3.0, -1.0, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 5.0]], np.float32)
  result = ssca.ssca(values, np.ones(3, np.float32), np.ones(3, bool), 0.0, 3)
  np.testing.assert_array_equal(result.agreement,
                                [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0],
                                 [0.0, 0.0, 1.0]])
  np.testing.assert_array_equal(result.support, [2, 2, 1])


def test_a_coordinate_whose_group_mass_cancels_elects_no_sign():
  # One group (tau -2); coordinate 1 holds +1 and -1 at equal weight: its
  # mass is 0, no sign is elected, and no entry agrees with none, so the
  # merged coordinate is 0 under either normalization.
  values = np.array([[2.0, 1.0], [2.0, -1.0]], np.float32)
  for normalize in ssca.NORMALIZE:
    result = ssca.ssca(values, np.ones(2, np.float32), np.ones(2, bool), -2.0,
                       1, normalize=normalize)
    np.testing.assert_array_equal(result.update, [2.0, 0.0])


def test_groups_of_fractional_weight_count_as_any_other():
  # Opposed clients, two groups of weight 0.5 and 0.25: every group of
  # positive weight is kept, and a mean over members of total weight
  # below 1 is still that mean.
  values = np.array([[2.0, 4.0], [-1.0, -3.0]], np.float32)
  weights = np.array([0.5, 0.25], np.float32)
  for normalize in ssca.NORMALIZE:
    result = ssca.ssca(values, weights, np.ones(2, bool), 0.0, 2,
                       normalize=normalize)
    np.testing.assert_allclose(result.group_weights, [0.5, 0.25])
    np.testing.assert_array_equal(result.membership,
                                  [[True, False], [False, True]])
    # (0.5 (2, 4) + 0.25 (-1, -3)) / 0.75.
    np.testing.assert_allclose(result.update, [1.0, 5 / 3], rtol=1e-6)


@pytest.mark.parametrize('dtype,materialize,row_groups,block', [
    ('int8', False, 1, 0), ('int8', True, 1, 0), ('bfloat16', True, 1, 0),
    ('float32', True, 1, 0), ('float32', False, 2, 0),
    ('float32', False, 4, 64), ('int8', True, 3, 0), ('float32', False, 9, 7),
    ('bits', False, 1, 0), ('bits', False, 1, 7), ('bits', True, 3, 1024),
    ('bits', False, 2, 2048), ('bits', False, 1, None)])
def test_every_agreement_form_is_exact(dtype, materialize, row_groups, block):
  # Sparse Gaussian rows; row 3 holds nothing (agreement and overlap 0).
  rng = np.random.default_rng(3)
  values = rng.normal(size=(7, 3000)) * (rng.random((7, 3000)) < 0.3)
  values = values.astype(np.float32)
  values[5, :2000] = np.abs(values[5, :2000])  # Mostly agreeing rows.
  values[6, :2000] = np.abs(values[6, :2000])
  holders = np.array([1, 1, 1, 0, 1, 1, 1], bool)
  signs = np.sign(values) * holders[:, None]
  overlap = np.abs(signs) @ np.abs(signs).T
  expected = (signs @ signs.T) / np.maximum(overlap, 1)
  agreement, got_overlap = jax.jit(lambda x: ssca.sign_agreement(
      x, holders, dtype, materialize, block=block, row_groups=row_groups))(
          values)
  np.testing.assert_array_equal(got_overlap, overlap)
  np.testing.assert_array_equal(agreement, expected.astype(np.float32))


@pytest.mark.parametrize('backend', ['cpu', 'gpu'])
@pytest.mark.parametrize('size', [3, 70, 300])
def test_default_agreement_layouts_are_exact_on_every_backend(
    backend, size, monkeypatch):
  # Every default the agreement picks from the backend and C (operand
  # type, row groups, block), with and without per-row thresholds, gives
  # the counts of the definition; the 'gpu' defaults run here on the CPU.
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  rng = np.random.default_rng(size)
  dense = rng.normal(size=(size, 2100)).astype(np.float32)
  threshold = rng.uniform(0.5, 1.5, size).astype(np.float32)
  holders = rng.random(size) < 0.9
  for dtype, given in itertools.product(('auto', 'int8', 'float32'),
                                        (None, threshold)):
    values = (dense if given is None else
              np.where(np.abs(dense) >= given[:, None], dense, 0.0))
    signs = np.sign(values) * holders[:, None]
    overlap = np.abs(signs) @ np.abs(signs).T
    expected = (signs @ signs.T) / np.maximum(overlap, 1)
    agreement, got = ssca.sign_agreement(
        jnp.asarray(dense), holders, dtype,
        threshold=None if given is None else jnp.asarray(given))
    np.testing.assert_array_equal(got, overlap)
    np.testing.assert_array_equal(agreement, expected.astype(np.float32))
  with pytest.raises(ValueError, match='row_groups must be at least 1, got 0'):
    ssca.sign_agreement(jnp.asarray(dense), holders, row_groups=0)


@pytest.mark.parametrize('size', [5, 1024, 2048, 3000])
def test_packed_signs_are_the_bits_of_the_support_and_the_negatives(size):
  rng = np.random.default_rng(size)
  values = rng.normal(size=(3, size)) * (rng.random((3, size)) < 0.5)
  values[0, 1] = np.nan  # Neither sign: outside the support.
  held = np.array([[True], [False], [True]])
  words = -(-size // ssca.BITS_WIDTH) * 32
  for got, mask in zip(ssca._pack_signs(jnp.asarray(values), held),
                       ((values > 0) | (values < 0), values < 0)):
    bits = np.zeros((3, words * 32), bool)
    bits[:, :size] = mask & held
    expected = (bits.reshape(3, words, 32).astype(np.uint64)
                << np.arange(32, dtype=np.uint64)).sum(-1)
    np.testing.assert_array_equal(got, expected.astype(np.uint32))


@pytest.mark.parametrize('block', [7, 64, 1000])
@pytest.mark.parametrize('combine', ['weighted', 'largest'])
def test_blocks_over_p_give_the_one_block_result(block, combine):
  # P = 3001 leaves a tail in every block size; block 1000 runs 3 blocks.
  rng = np.random.default_rng(5)
  values = (rng.normal(size=(10, 3001)) *
            (rng.random((10, 3001)) < 0.2)).astype(np.float32)
  weights = np.arange(1, 11, dtype=np.float32)
  holders = np.arange(10) % 4 != 1
  whole = ssca.ssca(values, weights, holders, 0.0, 3, combine, block=0)
  blocked = ssca.ssca(values, weights, holders, 0.0, 3, combine, block=block)
  np.testing.assert_array_equal(blocked.agreement, whole.agreement)
  np.testing.assert_array_equal(blocked.labels, whole.labels)
  np.testing.assert_allclose(blocked.update, whole.update, rtol=1e-6,
                             atol=1e-7)
  assert np.count_nonzero(whole.update) > 1000


@pytest.mark.parametrize('block, row_groups', [(0, 1), (64, 1), (0, 3),
                                               (64, 4)])
def test_dense_rows_with_thresholds_are_their_sparse_updates(block,
                                                             row_groups):
  rng = np.random.default_rng(6)
  dense = rng.normal(size=(10, 3001)).astype(np.float32)
  dense[:, ::7] = 0.0  # Exact zeros are never sent, at any threshold.
  threshold = np.quantile(np.abs(dense), 0.8, axis=1).astype(np.float32)
  threshold[3] = np.inf  # A client that sends nothing.
  sparse = np.where(compression.keep_mask(dense, threshold[:, None]), dense,
                    0.0)
  assert 0 < np.count_nonzero(sparse) < 0.25 * sparse.size
  weights = np.arange(1, 11, dtype=np.float32)
  holders = np.arange(10) % 4 != 1
  given = ssca.ssca(sparse, weights, holders, 0.0, 3, block=block)
  selected = ssca.ssca(dense, weights, holders, 0.0, 3, block=block,
                       threshold=jnp.asarray(threshold),
                       row_groups=row_groups)
  jax.tree.map(np.testing.assert_array_equal, selected, given)
  # Each holder's support is what it sent; non-holders sent nothing.
  np.testing.assert_array_equal(
      selected.support, np.where(holders, (sparse != 0).sum(1), 0))
  assert selected.support.dtype == jnp.int32


def test_map_columns_joins_blocks_in_order():
  values = np.arange(2 * 23, dtype=np.float32).reshape(2, 23)
  joined = blockwise.map_columns(
      lambda piece: piece[1] - piece[0] + piece[0]**2, values, 5)
  np.testing.assert_array_equal(joined, values[1] - values[0] + values[0]**2)


@pytest.mark.parametrize('block', [0, 4, 5, 23, 100])
def test_blockwise_reduce_counts_exactly(block):
  x = np.random.default_rng(0).normal(size=(3, 23)).astype(np.float32)
  counts = blockwise.reduce(lambda p: (p > 0).sum(-1), jnp.add, x, block)
  np.testing.assert_array_equal(counts, (x > 0).sum(-1))
  bad = x.copy()
  bad[1, 17] = np.nan
  finite = blockwise.reduce(lambda p: jnp.isfinite(p).all(-1),
                            jnp.logical_and, bad, block)
  np.testing.assert_array_equal(finite, [True, False, True])


@pytest.mark.parametrize('count', [blockwise.count_true,
                                   blockwise.count_true_columns])
@pytest.mark.parametrize('size', [1, 31, 32, 33, 256, 300, 4096, 70000])
def test_count_true_counts_exactly(size, count):
  rng = np.random.default_rng(size)
  mask = rng.random((3, 2, size)) < np.array([0.0, 0.3, 1.0])[:, None, None]
  counts = jax.jit(count)(mask)
  assert counts.dtype == jnp.int32
  np.testing.assert_array_equal(counts, mask.sum(-1))


def test_column_counts_refuse_rows_their_int16_sums_cannot_hold():
  with pytest.raises(ValueError, match='rows of at most 8388352 entries'):
    blockwise.count_true_columns(
        jax.ShapeDtypeStruct((32767 * 256 + 1,), jnp.bool_))


def test_unknown_agreement_dtype_is_refused():
  with pytest.raises(ValueError, match='float16'):
    ssca.sign_agreement(np.ones((2, 3), np.float32), np.ones(2, bool),
                        'float16')
  with pytest.raises(ValueError, match='row_groups must be at least 1'):
    ssca.sign_agreement(np.ones((2, 3), np.float32), np.ones(2, bool),
                        row_groups=0)
  # A round refuses them when it is built, before anything is traced.
  with pytest.raises(ValueError, match="agreement_dtype must be one of .*"
                     "'bits'.*got 'float16'"):
    aggregators.ssca(agreement_dtype='float16')
  with pytest.raises(ValueError, match='agreement_row_groups must be None or '
                     'at least 1, got 0'):
    aggregators.ssca(row_groups=0)


def test_connected_components_of_a_known_graph():
  # Edges 0-3, 3-5, 1-4; 2 alone.
  adjacency = np.zeros((6, 6), bool)
  for i, j in [(0, 3), (3, 5), (1, 4)]:
    adjacency[i, j] = adjacency[j, i] = True
  labels = ssca.connected_components(jnp.asarray(adjacency))
  np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 0])
  # A path is the slow case for label propagation.
  path = np.eye(9, k=1, dtype=bool) | np.eye(9, k=-1, dtype=bool)
  np.testing.assert_array_equal(
      ssca.connected_components(jnp.asarray(path[::-1, ::-1])), [0] * 9)


@pytest.mark.parametrize('fraction', [0.01, 0.1, 0.5])
def test_threshold_keeps_about_the_top_fraction(fraction):
  x = jax.random.normal(jax.random.key(0), (20000,))
  sparse = jax.jit(sparsify, static_argnums=1)(
      x, fraction, jax.random.key(1))
  k = int(np.ceil(fraction * x.size))
  kept = int(sparse.kept)
  assert abs(kept - k) <= max(2, 0.02 * k), (kept, k)
  values = np.asarray(sparse.rows)
  assert kept == int((values != 0).sum())
  # Exactly the largest magnitudes are kept.
  kept_abs = np.abs(np.asarray(x))[values != 0]
  dropped_abs = np.abs(np.asarray(x))[values == 0]
  assert kept_abs.min() >= dropped_abs.max()
  np.testing.assert_array_equal(values[values != 0], np.asarray(x)[values != 0])


@pytest.mark.parametrize('fraction', [0.05, 0.25, 0.5])
def test_ties_at_the_threshold_are_all_sent_and_counted(fraction):
  # Equal magnitudes: the k-th largest is every entry's, so all are sent.
  signs = jnp.where(jnp.arange(64) % 3 == 0, -1.0, 1.0)
  equal = sparsify(2.0 * signs, fraction, jax.random.key(0))
  np.testing.assert_array_equal(equal.rows, 2.0 * signs)
  assert int(equal.kept) == 64
  # Four magnitude levels of 16 entries each: the threshold falls on a
  # level, and every entry of that level goes (or none does).
  levels = jnp.repeat(jnp.array([4.0, 3.0, 2.0, 1.0]), 16) * signs
  tied = sparsify(levels, fraction, jax.random.key(1))
  values = np.asarray(tied.rows)
  sent = values != 0
  assert int(tied.kept) == int(sent.sum())
  np.testing.assert_array_equal(values[sent], np.asarray(levels)[sent])
  magnitude = np.abs(np.asarray(levels))
  assert magnitude[sent].min() > magnitude[~sent].max(initial=0.0)
  assert sent.sum() % 16 == 0 and sent.sum() >= np.ceil(fraction * 64) - 16


def reference_threshold(x, rho, key, num_samples=4096, bracket_sigmas=4.0):
  """compression.magnitude_threshold as its docstring states it, in NumPy
  float32: lowbias32 sample positions, the sample's order statistics as
  the bracket, Illinois false position, the end nearer k."""
  x = np.asarray(x, np.float32)
  size = x.size
  refine = 3 if rho >= 0.05 else 8
  samples = min(num_samples, size)
  with np.errstate(over='ignore'):
    h = (np.arange(samples, dtype=np.uint32) * np.uint32(0x9E3779B9) +
         np.uint32(jax.random.bits(key, (), jnp.uint32)))
    h = (h ^ (h >> np.uint32(16))) * np.uint32(0x7FEB352D)
    h = (h ^ (h >> np.uint32(15))) * np.uint32(0x846CA68B)
    h = h ^ (h >> np.uint32(16))
  sample = np.sort(np.abs(x[(h % np.uint32(size)).astype(np.int64)]))
  one, n, rho = np.float32(1), np.float32(samples), np.float32(rho)
  k = max(one, np.ceil(rho * np.float32(size)))
  spread = np.float32(bracket_sigmas) * np.sqrt(rho * (one - rho) / n)
  low_rank = np.clip(np.floor((one - rho - spread) * n) - 1, 0, samples - 1)
  high_rank = np.clip(np.ceil((one - rho + spread) * n), 0, samples - 1)
  lo, hi = sample[int(low_rank)], sample[int(high_rank)]
  f_lo = (n - low_rank) / n * np.float32(size) - k
  f_hi = (n - high_rank) / n * np.float32(size) - k
  side = 0
  for _ in range(refine):
    t = ((lo * f_hi - hi * f_lo) / (f_hi - f_lo) if f_lo > f_hi else
         np.float32(0.5) * (lo + hi))
    t = np.float32(min(max(t, lo), hi))
    f = np.float32(np.count_nonzero(np.abs(x) >= t)) - k
    if f >= 0:
      lo, f_lo = t, f
      f_hi = np.float32(0.5) * f_hi if side > 0 else f_hi
      side = 1
    else:
      hi, f_hi = t, f
      f_lo = np.float32(0.5) * f_lo if side < 0 else f_lo
      side = -1
  threshold = hi if abs(f_hi) < abs(f_lo) else lo
  return np.float32(0.0) if np.count_nonzero(x) <= k else threshold


@pytest.mark.parametrize('size', [1000, 20000])
def test_threshold_is_the_documented_search_step_by_step(size):
  rng = np.random.default_rng(size)
  vectors = {'normal': rng.standard_normal(size),
             'cauchy': rng.standard_cauchy(size),
             'sparse': rng.standard_normal(size) * (rng.random(size) < 0.3),
             'levels': rng.integers(-4, 5, size).astype(np.float64),
             # Tails so heavy that 8 false-position passes have not settled
             # at rho = 0.01 (a ninth moves the threshold).
             'heavy': rng.standard_cauchy(size) ** 3}
  # k = 1 at the smallest share of 1,000; the bracket's low end clipped at
  # the largest.
  fractions = [0.0005, 0.01, 0.05, 0.1, 0.3, 0.99]
  threshold = jax.jit(compression.magnitude_threshold, static_argnums=1)
  traced = jax.jit(jax.vmap(compression.magnitude_threshold,
                            in_axes=(None, 0, None)))
  for i, (name, x) in enumerate(vectors.items()):
    x = jnp.asarray(x, jnp.float32)
    key = jax.random.key(i)
    swept = traced(x, jnp.array(fractions, jnp.float32), key)
    for j, rho in enumerate(fractions):
      # Equal up to the last bit of XLA's false-position arithmetic, and
      # keeping exactly the same entries.
      expected = reference_threshold(x, rho, key)
      kept = np.count_nonzero(np.abs(np.asarray(x)) >= expected)
      for got in (threshold(x, rho, key), swept[j]):
        np.testing.assert_allclose(got, expected, rtol=3e-7, err_msg=name)
        assert np.count_nonzero(np.abs(np.asarray(x)) >= float(got)) == kept


def test_count_at_least_counts_zeros_only_when_asked_to():
  x = jnp.array([0.0, -0.0, 1.0, -2.0, 0.5, 0.0], jnp.float32)
  assert int(compression.count_at_least(x, 0.0)) == 6
  assert int(compression.count_at_least(x, 0.0, nonzero=True)) == 3
  assert int(compression.count_at_least(x, 1.0)) == 2
  assert int(compression.count_at_least(x, 1.0, nonzero=True)) == 2


def test_keep_mask_sends_every_nonzero_entry_at_the_threshold_either_sign():
  x = jnp.array([-1.0, 0.0, 2.0, -0.5, 1.0, -0.0], jnp.float32)
  np.testing.assert_array_equal(compression.keep_mask(x, 0.0),
                                [True, False, True, True, True, False])
  np.testing.assert_array_equal(compression.keep_mask(x, 1.0),
                                [True, False, True, False, True, False])


def test_magnitude_at_least_is_the_absolute_comparison():
  values = jnp.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, np.inf, -np.inf,
                      np.nan, 1e-45, -1e-45, 3e38], jnp.float32)
  thresholds = jnp.array([0.0, -0.0, 1.0, -1.0, 2.5, np.inf, -np.inf,
                          np.nan, 1e-45], jnp.float32)
  compare = jax.jit(jax.vmap(lambda t: (
      compression.magnitude_at_least(values, t), jnp.abs(values) >= t)))
  new, old = compare(thresholds)
  np.testing.assert_array_equal(new, old)


def test_order_statistics_are_the_sorted_entries_bit_for_bit():
  rng = np.random.default_rng(0)
  rows = np.abs(rng.standard_normal((5, 300)).astype(np.float32))
  rows[1, :200] = 0.0  # Many zeros.
  rows[2] = np.round(rows[2], 1)  # Ties.
  rows[3, ::7] = np.inf
  rows[3, ::11] = np.float32(3e38)
  rows[4, ::5] = np.nan
  rows[4, 1::5] = np.float32(1e-45)  # Subnormal.
  ranks = rng.integers(0, 300, (5, 7)).astype(np.int32)
  ranks[:, 0], ranks[:, 1] = 0, 299
  found = jax.jit(jax.vmap(compression.magnitude_order_statistics))(
      jnp.asarray(rows), jnp.asarray(ranks))
  expected = np.take_along_axis(np.sort(rows, axis=1), ranks, axis=1)
  np.testing.assert_array_equal(np.asarray(found).view(np.int32),
                                expected.view(np.int32))


def test_fraction_one_is_the_identity_and_zeros_are_never_kept():
  x = jnp.array([0.0, 1.0, -2.0, 0.0])
  full = sparsify(x, 1.0, jax.random.key(0))
  np.testing.assert_array_equal(full.rows, x)
  assert int(full.kept) == 2
  zeros = sparsify(jnp.zeros(100), 0.1, jax.random.key(0))
  assert int(zeros.kept) == 0


def test_message_bytes_takes_the_cheaper_encoding():
  # 10 of 1000 kept: positions 10 * 8 = 80 < bitmap 40 + 125.
  assert float(compression.message_bytes(jnp.array(10), 1000)) == 80
  # 500 of 1000: bitmap 2000 + 125 < positions 4000 = dense 4000.
  assert float(compression.message_bytes(jnp.array(500), 1000)) == 2125
  # All kept: dense values only.
  assert float(compression.message_bytes(jnp.array(1000), 1000)) == 4000


def test_traced_fraction_matches_the_static_one():
  x = jax.random.normal(jax.random.key(0), (20000,))
  fractions = [0.01, 0.1, 0.3, 1.0]
  traced = jax.jit(jax.vmap(lambda f: sparsify(
      x, f, jax.random.key(1))))(jnp.array(fractions))
  for i, fraction in enumerate(fractions):
    static = sparsify(x, fraction, jax.random.key(1))
    assert int(traced.kept[i]) == int(static.kept)
    np.testing.assert_array_equal(traced.rows[i], static.rows)


@pytest.mark.parametrize('backend', ['cpu', 'gpu'])
def test_residuals_stored_row_by_row_are_the_scatters(backend, monkeypatch):
  # Each backend's path (the row-by-row loop on CPU, one scatter elsewhere),
  # run here on the CPU.
  monkeypatch.setattr(jax, 'default_backend', lambda: backend)
  rng = np.random.default_rng(9)
  table = rng.normal(size=(6, 50)).astype(np.float32)
  flat = rng.normal(size=(5, 50)).astype(np.float32)
  threshold = np.array([0.5, 1.0, np.inf, 0.0, 2.0], np.float32)
  # The last table row is in the cohort, before and after ids past the
  # table (padding), which must leave every row as it was.
  ids = np.array([5, 1 << 30, 0, 6, 3], np.int32)
  scattered = jnp.asarray(table).at[ids].set(
      jnp.where(compression.keep_mask(flat, threshold[:, None]), 0.0, flat),
      mode='drop')
  stored = uploads.store_residuals(
      jnp.asarray(table), jnp.asarray(ids),
      uploads.Message(jnp.asarray(flat), jnp.asarray(threshold), None))
  np.testing.assert_array_equal(stored, scattered)
  np.testing.assert_array_equal(np.asarray(stored)[[2, 4]], table[[2, 4]])
  # The last table row outside the cohort, a padding id last: only the
  # cohort's rows change.
  ids = np.array([1, 0, 3, 1 << 30, 2], np.int32)
  stored = uploads.store_residuals(
      jnp.asarray(table), jnp.asarray(ids),
      uploads.Message(jnp.asarray(flat), jnp.asarray(threshold), None))
  np.testing.assert_array_equal(stored, jnp.asarray(table).at[ids].set(
      jnp.where(compression.keep_mask(flat, threshold[:, None]), 0.0, flat),
      mode='drop'))
  np.testing.assert_array_equal(np.asarray(stored)[[4, 5]], table[[4, 5]])


@pytest.mark.parametrize('size', [1000, 271_000, 2**24 + 3])
def test_sample_positions_cover_the_block_evenly(size):
  positions = jax.jit(jax.vmap(compression.sample_positions,
                               in_axes=(0, None, None)),
                      static_argnums=(1, 2))(
                          jax.random.split(jax.random.key(0), 8), 4096, size)
  positions = np.asarray(positions)
  assert positions.dtype == np.int32
  assert positions.min() >= 0 and positions.max() < size
  # Each key draws its own positions.
  assert len({row.tobytes() for row in positions}) == 8
  # 16 equal slices of the block get 2,048 +- 44 (1 sd) of the 32,768.
  counts = np.bincount(positions.ravel() * 16 // size, minlength=16)
  assert np.abs(counts - 2048).max() < 5 * 44, counts


@pytest.mark.parametrize('layout', ['rows', 'columns', 'cauchy'])
def test_thresholds_keep_the_fraction_on_structured_blocks(layout):
  # Scales that change along a weight matrix's rows or columns: a sample
  # drawn from part of the block, or in step with its rows, misjudges t.
  rng = np.random.default_rng(0)
  if layout == 'rows':
    x = rng.standard_normal((400, 256)) * 10 ** rng.uniform(-2, 1, (400, 1))
  elif layout == 'columns':
    x = rng.standard_normal((784, 256)) * 10 ** rng.uniform(-2, 1, 256)
  else:
    x = rng.standard_cauchy(100_000)
  x = jnp.asarray(x.ravel(), jnp.float32)
  for fraction in (0.01, 0.1):
    kept = jax.jit(jax.vmap(lambda key, f=fraction: sparsify(
        x, f, key).kept))(jax.random.split(jax.random.key(5), 64))
    k = np.ceil(fraction * x.size)
    error = np.abs(np.asarray(kept) - k) / k
    # 512 draws of each: mean error 0.3% and at most 3% (rho = 0.1; at most
    # 0.1% for rho = 0.01) with these positions, as with jax.random.randint.
    assert error.mean() < 0.006, (fraction, error.mean())
    assert error.max() < 0.05, (fraction, error.max())


@pytest.mark.parametrize('combine', ['weighted', 'largest'])
def test_rows_outside_the_groups_cannot_poison_the_update(combine):
  # Without a threshold, a zero-weight row and a non-holder row full of NaN
  # (the round zeroes such rows first; a direct call need not) leave the
  # update as if those rows were zeros.
  rng = np.random.default_rng(4)
  values = rng.standard_normal((5, 40)).astype(np.float32)
  values[values < 0.3] = 0.0
  weights = np.array([1.0, 2.0, 0.0, 1.5, 1.0], np.float32)
  holders = np.array([True, True, True, True, False])
  clean = values.copy()
  clean[[2, 4]] = 0.0
  poisoned = values.copy()
  poisoned[2] = np.nan
  poisoned[4, ::3] = np.nan
  run = jax.jit(lambda x: ssca.ssca(x, weights, holders, 0.0, 2,
                                    combine).update)
  expected = run(clean)
  assert np.isfinite(np.asarray(expected)).all()
  np.testing.assert_array_equal(run(poisoned), expected)


@pytest.mark.parametrize('nonzero', [1, 37, 99, 100])
def test_a_vector_with_at_most_k_nonzeros_keeps_them_all(nonzero):
  # k = ceil(0.1 * 1000) = 100: with at most 100 non-zero entries, every
  # one is sent.
  rng = np.random.default_rng(nonzero)
  x = np.zeros(1000, np.float32)
  x[rng.choice(1000, nonzero, replace=False)] = rng.standard_normal(nonzero)
  for key in jax.random.split(jax.random.key(0), 8):
    sparse = jax.jit(sparsify, static_argnums=1)(jnp.asarray(x), 0.1, key)
    assert int(sparse.kept) == nonzero
    np.testing.assert_array_equal(sparse.rows, x)
  # Traced rho too (a sweep).
  traced = jax.jit(lambda r: sparsify(jnp.asarray(x), r, jax.random.key(1)))(
      jnp.float32(0.1))
  assert int(traced.kept) == nonzero
