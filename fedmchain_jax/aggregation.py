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
  # Written as a product with 1 / total: XLA rewrites a division by a
  # broadcast scalar into that product in some programs and not in others
  # (one device against a mesh), which would change the last bit.
  scale = 1.0 / total

  def reduce(x):
    shape = weights.shape + (1,) * (x.ndim - 1)
    x = jnp.where((weights > 0).reshape(shape), x, 0)
    # A fixed tree of adds over the clients: the same bits whatever the
    # layout around it (chunks, a mesh, the rows fused into one block), and
    # on CPU faster than a matrix-vector product (benchmarks/RESULTS.md).
    summed = determinism.fixed_order_sum(
        weights.astype(x.dtype).reshape(shape) * x)
    return summed * scale.astype(x.dtype)

  return jax.tree.map(reduce, values)
