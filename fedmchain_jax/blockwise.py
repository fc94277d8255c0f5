"""Passes over the long axis of [..., P] arrays in blocks that stay in cache.

XLA:CPU writes the operand of a reduction or of a matrix product out to a
fresh buffer before using it: under the cohort's vmap that is a [C, P]
array, and on a small machine the page faults of fresh memory cost more
than the arithmetic (a count of |x| >= t over [64, 271k] takes 29 ms, 8 ms
in blocks; measured in benchmarks/RESULTS.md). A `lax.fori_loop` over blocks
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


def _count(x: Array, block: int) -> int:
  return x.shape[-1] // block if block else 0


def reduce(fn: Callable, combine: Callable, x: Array, block: int):
  """Folds fn over blocks of x's last axis: combine(.. combine(fn(tail),
  fn(block 0)) .., fn(block n-1)); fn(x) when there are fewer than 2 blocks.

  Exact when combine is (integer addition, logical and, ...) exact.
  """
  blocks = _count(x, block)
  if blocks < 2:
    return fn(x)
  return jax.lax.fori_loop(
      0, blocks, lambda i, acc: combine(acc, fn(jax.lax.dynamic_slice_in_dim(
          x, i * block, block, axis=-1))), fn(x[..., blocks * block:]))


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
