"""Server-side reductions over the clients axis."""

import jax
import jax.numpy as jnp

from fedmchain_jax import determinism
from fedmchain_jax.types import Array, PyTree


def weighted_mean(values: PyTree, weights: Array) -> PyTree:
  """sum_c w_c x_c / sum_c w_c over axis 0 of every leaf [C, ...].

  A client with weight 0 contributes nothing, even if its values are not
  finite; with all weights 0 the result is 0.
  """
  total = jnp.maximum(determinism.fixed_order_sum(weights),
                      jnp.finfo(jnp.float32).tiny)

  def reduce(x):
    mask = (weights > 0).reshape(weights.shape + (1,) * (x.ndim - 1))
    x = jnp.where(mask, x, 0)
    w = weights.astype(x.dtype)
    if x.ndim == 1:
      summed = determinism.fixed_order_sum(w * x)
    else:
      # A contraction, not .sum(axis=0): XLA:CPU runs leading-axis
      # reductions of [C, P] an order of magnitude slower than the
      # matrix-vector product.
      summed = jnp.tensordot(w, x, 1)
    return summed / total.astype(x.dtype)

  return jax.tree.map(reduce, values)
