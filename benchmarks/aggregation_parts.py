r"""Times the parts of FedMChain's aggregation of one block, each alone.

  python -m benchmarks.aggregation_parts --cohort_size=64 --block_size=271000

Inputs are Gaussian [C, P] updates (what the clients' deltas plus residuals
look like to the server); each part is jitted alone and timed as the median
of --repeats after one warm-up. Prints one JSON object: milliseconds per
part, and the bytes of one [C, P] float32 pass for scale.
"""

import functools
import json
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

import fedmchain_jax as fmc

from experiments import cli

_COHORT = flags.DEFINE_integer('cohort_size', 64, 'C.', lower_bound=1)
_BLOCK = flags.DEFINE_integer('block_size', 271_000, 'P.', lower_bound=1)
_RHO = flags.DEFINE_float('rho', 0.1, 'Kept fraction, in (0, 1].')
flags.register_validator('rho', lambda rho: 0 < rho <= 1,
                         message='--rho must be in (0, 1]')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repetitions.',
                                lower_bound=1)
_ONLY = flags.DEFINE_list(
    'only', [], 'Time only the parts whose names contain one of these.')


# XLA:GPU's own (Triton) matrix-product kernels off: library kernels only.
CUBLAS = {'xla_gpu_enable_triton_gemm': False}


def median_ms(fn, *args, repeats=5):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    tic = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - tic)
  return 1e3 * statistics.median(times)


def main(argv):
  del argv
  size, block, rho = _COHORT.value, _BLOCK.value, _RHO.value
  options = fmc.determinism.compiler_options()
  jit = lambda f: jax.jit(f, compiler_options=options)
  values = jax.random.normal(jax.random.key(0), (size, block))
  weights = jnp.ones((size,))
  holders = jnp.ones((size,), bool)
  keys = jax.random.split(jax.random.key(1), size)
  upload = fmc.uploads.top_fraction(rho)
  sparsify = jit(lambda x, k: upload.encode(x, holders, k))
  sparse = sparsify(values, keys).values()
  # A fixed threshold keeping about the top 10% of Gaussian entries.
  threshold = jnp.full((size,), 1.645)
  selected = jnp.where(fmc.compression.keep_mask(values, threshold[:, None]),
                       values, 0.0)
  table = jnp.zeros((size, block))
  ids = jnp.arange(size)

  def error_feedback(table, flat, sent):
    residual = table[ids]
    return table.at[ids].set(flat + residual - sent, mode='drop')

  parts = {
      'one_pass_scale': jit(lambda x: x * 2.0),
      'sparsify': lambda x: sparsify(x, keys),
      'agreement_int8': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'int8', False)),
      'agreement_float32': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'float32', False)),
      'agreement_int8_materialized': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'int8', True)),
      'agreement_bfloat16_materialized': jit(
          lambda x: fmc.ssca.sign_agreement(x, holders, 'bfloat16', True)),
      'agreement_int8_cublas': jax.jit(
          lambda x: fmc.ssca.sign_agreement(x, holders, 'int8', False),
          compiler_options=dict(options, **CUBLAS)),
      'agreement_int8_materialized_cublas': jax.jit(
          lambda x: fmc.ssca.sign_agreement(x, holders, 'int8', True),
          compiler_options=dict(options, **CUBLAS)),
      'agreement_bits': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'bits', row_groups=1)),
      'agreement_bits_groups_4': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'bits', row_groups=4)),
      'agreement_int8_groups_2': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'int8', row_groups=2)),
      'agreement_int8_groups_4': jit(lambda x: fmc.ssca.sign_agreement(
          x, holders, 'int8', row_groups=4)),
      'ssca': jit(lambda x: fmc.ssca.ssca(x, weights, holders, 0.0, 4)),
      # As in the round: dense updates and each row's threshold, the signs
      # selected inside the agreement (operands fused into the products, or
      # materialized first), in 1, 2 or 4 row groups.
      **{f'agreement_int8_threshold_groups_{groups}{suffix}': jit(
          functools.partial(fmc.ssca.sign_agreement, holders=holders,
                            dtype='int8', materialize=materialize,
                            threshold=threshold, row_groups=groups))
         for groups in (1, 2, 4)
         for suffix, materialize in (('', False), ('_materialized', True))},
      'error_feedback': functools.partial(jit(error_feedback), table, values),
  }
  result = {'cohort_size': size, 'block_size': block, 'rho': rho,
            'device': jax.devices()[0].device_kind,
            'pass_mb': size * block * 4 / 2**20}
  only = _ONLY.value
  parts = {name: fn for name, fn in parts.items()
           if not only or any(word in name for word in only)}

  def inputs(name):  # (timed input, the sparse rows it stands for)
    if name == 'sparsify':
      return values, None
    if '_threshold_' in name:
      return values, selected
    return sparse, sparse

  for name, fn in parts.items():
    try:
      result[f'{name}_ms'] = median_ms(fn, inputs(name)[0],
                                       repeats=_REPEATS.value)
    except Exception as error:  # pylint: disable=broad-except
      result[f'{name}_error'] = f'{type(error).__name__}: {error}'[:300]
  # Every form must give the float32 agreement exactly.
  reference = jit(lambda x: fmc.ssca.sign_agreement(x, holders, 'float32',
                                                   row_groups=1))
  for name, fn in parts.items():
    if name.startswith('agreement_') and f'{name}_ms' in result:
      timed, stands_for = inputs(name)
      result[f'{name}_exact'] = all(
          bool(jnp.array_equal(a, b.astype(a.dtype)))
          for a, b in zip(reference(stands_for), fn(timed)))
  print(json.dumps(result, sort_keys=True), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser())
