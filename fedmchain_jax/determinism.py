"""Compiler options that make a round's numbers independent of its layout.

A round's result should not depend on how the cohort is laid out: the chunk
size of local training, the number of devices its clients are sharded over,
or the zero-weight clients that pad it. Four things stand in the way, all
measured on XLA:CPU with jax 0.10 and 0.12:

* XLA:CPU hands large enough fusions (reductions, elementwise chains) to its
  YNNPACK library and small ones to its own emitters. The two sum in different
  orders, so a client's loss, bias gradient or softmax rounds differently when
  it is trained among 2 clients than among 10 (last-bit differences, 1e-8
  after a round). `compiler_options()` turns those library fusions off, which
  leaves XLA's own emitters, whose per-element results do not depend on the
  batch size. Some CPUs run slower with the options (benchmarks/RESULTS.md);
  `compiler_options(layout_independent=False)` gives that speed back and
  the layout dependence with it.
* Short sums (a client's losses over its batch and steps, per-client metric
  vectors) still depend on the batch of clients around them even in XLA's
  own emitters; `fixed_order_sum` spells their order out.
* Sums over the clients axis depend on how many rows each device holds. The
  rounds in `fedmchain_jax.algorithms` therefore reduce over clients in a
  layout that does not depend on the mesh (`placement.Placement`'s
  `mesh_reduction`), and `aggregation.weighted_mean` as a fixed tree of adds
  times 1 / total.
* Matrix products. XLA:CPU rounds each row of a product [M, K] x [K, N]
  in a way that depends on M (its GEMM picks kernels and K blocks by the
  row count), on some CPUs (AVX2) and not others. Clients that share their
  starting params would make the first local step one [n B, K] x [K, N]
  product over the n clients around them, so on CPU the rounds give each
  client its own copy of the params (a batched product of B rows per
  client; no cost measurable on the reference workload), and run a chunk of
  one client as two (a lone client's weight gradient is a plain product,
  contracted in another order than a batch's).

Use the options wherever a round is compiled:

  >>> run_round = jax.jit(algorithm.run_round,
  ...                     compiler_options=fmc.determinism.compiler_options())

The launcher, sweeps and benchmark do. Off CPU the options are empty: GPU and
TPU pick their kernels by shape, not by a size threshold, and this project has
not measured their layout dependence.
"""

import jax
import jax.numpy as jnp

from fedmchain_jax.types import Array

# DebugOptions.xla_cpu_experimental_ynn_fusion_type: the kinds of fusion
# XLA:CPU may give YNNPACK; empty: none.
CPU_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


def compiler_options(backend: str | None = None,
                     layout_independent: bool = True) -> dict[str, str]:
  """Options for `jax.jit(..., compiler_options=...)` on `backend`.

  Args:
    backend: 'cpu', 'gpu', 'tpu', ...; None: `jax.default_backend()`.
    layout_independent: False gives XLA's defaults, which let YNNPACK take
      the large fusions: faster on some CPUs (benchmarks/RESULTS.md), but
      the last bits of a round then depend on its chunk size and device
      count. Runs stay repeatable.

  Returns:
    A new dict (empty off CPU or when not `layout_independent`).
  """
  backend = backend or jax.default_backend()
  if backend != 'cpu' or not layout_independent:
    return {}
  return dict(CPU_OPTIONS)


def fixed_order_sum(x: Array, axis: int = 0) -> Array:
  """Sum over `axis` as a balanced tree of adds, in a fixed order.

  XLA reduces a short axis in an order that depends on what surrounds it: a
  vmapped client's [B] losses sum differently alone, 2 per device or 8 at
  once, and a [C] vector of per-client metrics differently on one device
  and after a gather on a mesh. Adding halves, zero-padded to a power of
  two, fixes the order (x + 0 is exact), and its gradient stays a handful
  of slices, unlike a left-to-right chain.
  """
  x = jnp.moveaxis(x, axis, 0)
  size = x.shape[0]
  width = 1 << max(size - 1, 0).bit_length()
  if width > size:
    x = jnp.concatenate([x, jnp.zeros((width - size,) + x.shape[1:], x.dtype)])
  while x.shape[0] > 1:
    x = x[0::2] + x[1::2]
  return x[0]
