"""Compiler options that make a round's numbers independent of its layout.

A round's result should not depend on how the cohort is laid out: the chunk
size of local training, the number of devices its clients are sharded over,
or the zero-weight clients that pad it. Two things stand in the way on
XLA:CPU, both measured on jax 0.10 and 0.12:

* XLA:CPU hands large enough fusions (reductions, elementwise chains) to its
  YNNPACK library and small ones to its own emitters. The two sum in different
  orders, so a client's loss, bias gradient or softmax rounds differently when
  it is trained among 2 clients than among 10 (last-bit differences, 1e-8
  after a round). `compiler_options()` turns those library fusions off, which
  leaves XLA's own emitters, whose per-element results do not depend on the
  batch size. The reference workload runs as fast either way
  (benchmarks/RESULTS.md).
* Sums over the clients axis depend on how many rows each device holds. The
  rounds in `fedmchain_jax.algorithms` therefore reduce over clients in a
  layout that does not depend on the mesh (see `compose`'s `mesh` argument).

Use the options wherever a round is compiled:

  >>> run_round = jax.jit(algorithm.run_round,
  ...                     compiler_options=fmc.determinism.compiler_options())

The launcher, sweeps and benchmark do. Off CPU the options are empty: GPU and
TPU pick their kernels by shape, not by a size threshold, and this project has
not measured their layout dependence.
"""

import jax

# DebugOptions.xla_cpu_experimental_ynn_fusion_type: the kinds of fusion
# XLA:CPU may give YNNPACK; empty: none.
CPU_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


def compiler_options(backend: str | None = None) -> dict[str, str]:
  """Options for `jax.jit(..., compiler_options=...)` on `backend`.

  Args:
    backend: 'cpu', 'gpu', 'tpu', ...; None: `jax.default_backend()`.

  Returns:
    A new dict (empty off CPU).
  """
  backend = backend or jax.default_backend()
  return dict(CPU_OPTIONS) if backend == 'cpu' else {}
