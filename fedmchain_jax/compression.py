"""The magnitude threshold of top-fraction uploads, found without sorting.

Keeping the largest `rho` of a [P] vector by magnitude needs the magnitude
of its k-th largest entry, k = ceil(rho * P). Sorting or
`lax.top_k` over [C, P] costs many times the local training, so the threshold
is found in a few linear passes:

1. a sample: the quantile of |x| over `num_samples` random entries
   (`sample_positions`) gives a bracket [lo, hi] around the threshold,
   `bracket_sigmas` binomial standard deviations of the sample quantile
   wide;
2. two counts at the bracket ends and `refine_steps` false-position passes
   (Illinois variant) inside it, each one count of `|x| >= t` over the whole
   vector, keeping count(|x| >= lo) >= k;
3. one masking pass with the final `lo`.

That is refine_steps + 3 linear passes; the kept count is within a few per
cent of k (tests/test_ssca.py bounds it on Gaussian, Cauchy and scaled
blocks), and the count actually kept is what the byte metrics use. A vector
with at most k non-zero entries keeps all of them.
"""

import math
import jax
import jax.numpy as jnp
import numpy as np

from fedmchain_jax import blockwise
from fedmchain_jax.types import Array, PRNGKey


def magnitude_at_least(x: Array, threshold: Array) -> Array:
  """|x| >= threshold, for every x and threshold (NaN: False), as two
  comparisons with the threshold: no |x| of its own for XLA to hoist out of
  a loop over thresholds and write out whole (benchmarks/RESULTS.md)."""
  return (x >= threshold) | (x <= -threshold)


def count_at_least(x: Array, threshold: Array, nonzero: bool = False,
                   block: int | None = None) -> Array:
  """int32 count of |x| >= threshold (and x != 0 with `nonzero`) over [P].

  In blocks on CPU (`blockwise`): a plain count writes the whole mask to
  fresh memory first. Counts are exact, so every block size gives the same
  result.
  """
  def count(piece):
    hit = magnitude_at_least(piece, threshold)
    if nonzero:
      hit = hit & (piece != 0)
    return blockwise.count_true(hit)

  return blockwise.reduce(count, jnp.add, x, blockwise.default_block(block))


def magnitude_order_statistics(magnitude: Array, ranks: Array) -> Array:
  """The ranks-th smallest entries (0-based) of a non-negative float [n].

  Bit for bit the entries of an ascending sort at `ranks`, found without
  sorting: for x >= 0 (and NaN, which sorts last either way) the IEEE bit
  pattern orders as the value does, so the r-th smallest pattern is built
  bit by bit, 31 counts of `bits < candidate` over [n]
  (`blockwise.count_true_columns`), for all ranks at once: several times
  faster than a sort under the cohort's vmap (benchmarks/RESULTS.md).

  Args:
    magnitude: [n] float32, >= 0 or NaN.
    ranks: int32 [...] in [0, n), static or traced.

  Returns:
    [...] the order statistics, magnitude's dtype.
  """
  bits = jax.lax.bitcast_convert_type(magnitude, jnp.int32)
  # Padding above every candidate counts nowhere; done once, not per count.
  bits = jnp.pad(bits, (0, -bits.shape[0] % blockwise.COUNT_WIDTH),
                 constant_values=np.iinfo(np.int32).max)
  ranks = jnp.asarray(ranks, jnp.int32)

  def take_bit(i, prefix):
    # The answer is the largest pattern with at most `rank` entries below.
    candidate = prefix | jnp.left_shift(jnp.int32(1), 30 - i)
    below = blockwise.count_true_columns(bits < candidate[..., None])
    return jnp.where(below <= ranks, candidate, prefix)

  found = jax.lax.fori_loop(0, 31, take_bit, jnp.zeros_like(ranks))
  return jax.lax.bitcast_convert_type(found, magnitude.dtype)


def sample_positions(key: PRNGKey, samples: int, size: int) -> Array:
  """int32 [samples] positions in [0, size) for the threshold's sample.

  One random 32-bit start from `key`, then for i = 0, 1, ... the 32-bit
  integer hash lowbias32 (C. Wellons' integer-hash search: a xor-shift,
  multiply, xor-shift, multiply, xor-shift bijection) of start + i *
  0x9E3779B9, reduced mod size (which favours low positions by at most
  size / 2^32: 0.4% at 2^24).
  `jax.random.randint` draws two threefry words a position, which under the
  cohort's vmap costs far more than this hash (benchmarks/RESULTS.md).
  """
  x = (jnp.arange(samples, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
       + jax.random.bits(key, (), jnp.uint32))
  x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
  x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
  x = x ^ (x >> 16)
  return (x % jnp.uint32(size)).astype(jnp.int32)


def magnitude_threshold(x: Array, rho: float, key: PRNGKey,
                        num_samples: int = 4096,
                        refine_steps: int | None = None,
                        bracket_sigmas: float = 4.0) -> Array:
  """A threshold t with about ceil(rho * P) entries of |x| >= t.

  Args:
    x: [P] values (any sign).
    rho: in (0, 1], a Python number or a traced scalar.
    key: PRNG key for the sample positions.
    num_samples: entries sampled to bracket the threshold.
    refine_steps: false-position passes inside the bracket (one count of
      |x| >= t over the whole vector each); default 3 for rho >= 0.05, where
      the sample alone nearly pins t, else 8.
    bracket_sigmas: bracket half-width in standard deviations of the sample
      quantile.

  Returns:
    A scalar threshold (0 when rho >= 1, or when x has at most
    ceil(rho * P) non-zero entries: then every one of them is kept).
  """
  size = x.shape[0]
  static = isinstance(rho, (int, float))
  if static and rho >= 1.0:
    return jnp.zeros((), x.dtype)
  if refine_steps is None:
    refine_steps = ((3 if rho >= 0.05 else 8) if static else
                    jnp.where(rho >= 0.05, 3, 8))
  samples = min(num_samples, size)
  sample = jnp.abs(x[sample_positions(key, samples, size)])
  # Order statistics of the sample bracketing the (1 - rho) quantile,
  # and the counts the sample predicts there (no pass over x needed). All in
  # float32, with NumPy for a Python rho and jnp for a traced one (a
  # sweep over rho): the same correctly rounded steps, the same threshold.
  xp = np if static else jnp
  rho = xp.float32(rho) if static else rho.astype(jnp.float32)
  k = xp.maximum(xp.float32(1), xp.ceil(rho * xp.float32(size)))
  spread = xp.float32(bracket_sigmas) * xp.sqrt(
      rho * (xp.float32(1) - rho) / xp.float32(samples))
  low_rank = xp.clip(xp.floor((xp.float32(1) - rho - spread) *
                              xp.float32(samples)) - 1, 0, samples - 1)
  high_rank = xp.clip(xp.ceil((xp.float32(1) - rho + spread) *
                              xp.float32(samples)), 0, samples - 1)
  low, high = magnitude_order_statistics(
      sample, jnp.stack([low_rank, high_rank]).astype(jnp.int32))
  f_low = (xp.float32(samples) - low_rank) / xp.float32(samples) * xp.float32(
      size) - k
  f_high = (xp.float32(samples) - high_rank) / xp.float32(samples) * (
      xp.float32(size)) - k

  def false_position(_, state):
    # Illinois variant: halve the stale end's excess so both ends move.
    lo, hi, f_lo, f_hi, side = state
    t = jnp.where(f_lo > f_hi, (lo * f_hi - hi * f_lo) / (f_hi - f_lo),
                  0.5 * (lo + hi))
    t = jnp.clip(t, lo, hi)
    f = count_at_least(x, t).astype(jnp.float32) - k
    up = f >= 0
    return (jnp.where(up, t, lo), jnp.where(up, hi, t),
            jnp.where(up, f, jnp.where(side < 0, 0.5 * f_lo, f_lo)),
            jnp.where(up, jnp.where(side > 0, 0.5 * f_hi, f_hi), f),
            jnp.where(up, 1, -1))

  state = (low, high, jnp.float32(f_low), jnp.float32(f_high), 0)
  low, high, f_low, f_high, _ = jax.lax.fori_loop(0, refine_steps,
                                                  false_position, state)
  # The end whose count is nearer k; with at most k non-zero entries, all.
  threshold = jnp.where(jnp.abs(f_high) < jnp.abs(f_low), high, low)
  nonzero = blockwise.reduce(lambda piece: blockwise.count_true(piece != 0),
                             jnp.add, x, blockwise.default_block())
  threshold = jnp.where(nonzero.astype(jnp.float32) <= k, 0.0, threshold)
  if not static:
    threshold = jnp.where(rho >= 1.0, 0.0, threshold)
  return threshold


def keep_mask(x: Array, threshold: Array) -> Array:
  """The entries a client sends: |x| >= threshold and x != 0."""
  return magnitude_at_least(x, threshold) & (x != 0)


def message_bytes(kept: Array, size: int, value_bytes: int = 4,
                  index_bytes: int = 4) -> Array:
  """Bytes a client sends for one sparse block of `size` entries.

  The cheaper of values + int32 positions and values + a bitmap of `size`
  bits; a dense block (every entry kept) needs values only. Returns float32
  (counts past 2^31 overflow int32).
  """
  kept = kept.astype(jnp.float32)
  with_positions = kept * (value_bytes + index_bytes)
  with_bitmap = kept * value_bytes + math.ceil(size / 8)
  dense = jnp.float32(size * value_bytes)
  return jnp.minimum(jnp.minimum(with_positions, with_bitmap), dense)
