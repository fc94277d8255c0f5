"""Server-side reductions over the clients axis."""

import jax
import jax.numpy as jnp

from fedmchain_jax.types import Array, PyTree


def pairwise_sum(x: Array) -> Array:
  """Sum over axis 0 as a balanced tree of adds, in a fixed order.

  For short per-client vectors (metrics, byte counts): XLA fuses a plain
  reduction of a [C] vector differently depending on what surrounds it (one
  device, or after a gather on a mesh) and the fusions sum in different
  orders. Adding halves, zero-padded to a power of two, fixes the order.
  """
  size = x.shape[0]
  width = 1 << max(size - 1, 0).bit_length()
  if width > size:
    x = jnp.concatenate([x, jnp.zeros((width - size,) + x.shape[1:], x.dtype)])
  while x.shape[0] > 1:
    x = x[0::2] + x[1::2]
  return x[0]


def weighted_mean(values: PyTree, weights: Array) -> PyTree:
  """sum_c w_c x_c / sum_c w_c over axis 0 of every leaf [C, ...].

  A client with weight 0 contributes nothing, even if its values are not
  finite; with all weights 0 the result is 0.
  """
  total = jnp.maximum(pairwise_sum(weights), jnp.finfo(jnp.float32).tiny)

  def reduce(x):
    mask = (weights > 0).reshape(weights.shape + (1,) * (x.ndim - 1))
    x = jnp.where(mask, x, 0)
    w = weights.astype(x.dtype)
    if x.ndim == 1:
      summed = pairwise_sum(w * x)
    else:
      # A contraction, not .sum(axis=0): XLA:CPU runs leading-axis
      # reductions of [C, P] an order of magnitude slower than the
      # matrix-vector product.
      summed = jnp.tensordot(w, x, 1)
    return summed / total.astype(x.dtype)

  return jax.tree.map(reduce, values)
