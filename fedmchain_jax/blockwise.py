"""Passes over the long axis of [..., P] arrays in blocks that stay in cache.

XLA:CPU writes the operand of a reduction or of a matrix product out to a
fresh buffer before using it: under the cohort's vmap that is a [C, P]
array, and on a small machine the page faults of fresh memory cost more
than the arithmetic (benchmarks/RESULTS.md). A `lax.fori_loop` over blocks
of `BLOCK` entries keeps each block's temporaries in cache. On accelerators
XLA fuses such passes itself, so the default there is one block.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from fedmchain_jax.types import Array

# Entries of the long axis per step.
BLOCK = 8192


def default_block(block: int | None = None) -> int:
  """block, or for None `BLOCK` on CPU and 0 (one block) elsewhere."""
  if block is None:
    return BLOCK if jax.default_backend() == 'cpu' else 0
  return block


def _count(x, block: int) -> int:
  return jax.tree.leaves(x)[0].shape[-1] // block if block else 0


# XLA:CPU turns a reduction over more than this many entries into a tree of
# reduce-windows whose operand is written out first; shorter sums fuse with
# the computation of their operand.
SHORT_SUM = 32
# Entries `count_true` counts in int16 before the int32 sum (8 short sums).
COUNT_WIDTH = 8 * SHORT_SUM


def count_true(mask: Array) -> Array:
  """int32 count of the True entries of mask along its last axis.

  As int16 sums of 32, then of 8 of those, then the rest, which XLA:CPU
  fuses with the comparison that makes the mask (a plain `jnp.sum(mask,
  -1)` writes the mask out first; benchmarks/RESULTS.md). Exact.
  The last axis is padded with False to a multiple of `COUNT_WIDTH`.
  """
  if mask.shape[-1] <= SHORT_SUM:
    return jnp.sum(mask, axis=-1, dtype=jnp.int32)
  partial = _runs(mask).sum(-1, dtype=jnp.int16).sum(-1, dtype=jnp.int16)
  return jnp.sum(partial, axis=-1, dtype=jnp.int32)


def _runs(mask: Array) -> Array:
  """mask [..., n] padded with False to [..., n / 256, 8, 32]."""
  mask = jnp.pad(mask, [(0, 0)] * (mask.ndim - 1) +
                 [(0, -mask.shape[-1] % COUNT_WIDTH)])
  return mask.reshape(mask.shape[:-1] + (-1, COUNT_WIDTH // SHORT_SUM,
                                         SHORT_SUM))


def count_true_columns(mask: Array) -> Array:
  """`count_true` for short rows (a few thousand entries) counted again and
  again: the last axis as [n / 256, 256] columns summed down in int16 (a
  sum over a major axis, which XLA:CPU vectorizes across the 256 lanes),
  then across: faster than `count_true` for the threshold's order
  statistics (many counts of short rows) and slower for one count of a
  long row, which stays with `count_true` (benchmarks/RESULTS.md). Exact,
  for rows of up to 32,767 x 256.
  The last axis is padded with False to a multiple of `COUNT_WIDTH`.
  """
  size = mask.shape[-1]
  if size <= SHORT_SUM:
    return jnp.sum(mask, axis=-1, dtype=jnp.int32)
  if size > 32767 * COUNT_WIDTH:
    raise ValueError(f'rows of at most {32767 * COUNT_WIDTH} entries, got '
                     f'{size}')
  partial = _runs(mask).sum(-3, dtype=jnp.int16)
  return partial.sum(-1, dtype=jnp.int32).sum(-1, dtype=jnp.int32)


def reduce(fn: Callable, combine: Callable, x, block: int):
  """Folds fn over blocks of x's last axis: combine(.. combine(fn(tail),
  fn(block 0)) .., fn(block n-1)); fn(x) when there are fewer than 2 blocks.

  x may be a pytree of arrays whose last axes have the same length; fn then
  gets the same pytree of blocks. Exact when combine is (integer addition,
  logical and, ...) exact.
  """
  blocks = _count(x, block)
  if blocks < 2:
    return fn(x)

  def piece(i):
    return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(
        a, i * block, block, axis=-1), x)

  return jax.lax.fori_loop(
      0, blocks, lambda i, acc: combine(acc, fn(piece(i))),
      fn(jax.tree.map(lambda a: a[..., blocks * block:], x)))


def map_columns(fn: Callable[[Array], Array], x: Array, block: int) -> Array:
  """fn over [C, block] column blocks of x [C, P], joined: [P].

  fn must treat each column on its own; fn(x) when there are fewer than 2
  blocks.
  """
  blocks = _count(x, block)
  if blocks < 2:
    return fn(x)

  def step(i, out):
    start = i * block
    piece = fn(jax.lax.dynamic_slice_in_dim(x, start, block, axis=1))
    return jax.lax.dynamic_update_slice_in_dim(out, piece, start, axis=0)

  head = jax.lax.fori_loop(0, blocks, step,
                           jnp.zeros((blocks * block,), x.dtype))
  return jnp.concatenate([head, fn(x[:, blocks * block:])])
