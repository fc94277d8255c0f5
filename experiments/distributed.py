"""Multi-host start-up: `jax.distributed.initialize` from flags or environment.

On a TPU pod slice every host runs the same command and JAX finds the
coordinator itself (`--distributed=auto`). Elsewhere pass the coordinator's
address and this process's rank, by flags or by the environment variables
JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID. CPU
processes talk through gloo.
"""

import os

from absl import flags
import jax

_MODE = flags.DEFINE_enum(
    'distributed', 'off', ['off', 'auto', 'explicit'],
    "'auto': jax.distributed.initialize() finds the cluster (TPU pods, "
    "SLURM); 'explicit': from --coordinator_address, --num_processes, "
    "--process_id or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, "
    "JAX_PROCESS_ID; 'off': one process (the default, unless those "
    'variables are set).')
_ADDRESS = flags.DEFINE_string('coordinator_address', None,
                               'host:port of process 0.')
_COUNT = flags.DEFINE_integer('num_processes', None, 'Processes in all.')
_RANK = flags.DEFINE_integer('process_id', None, "This process's rank.")


def initialize() -> None:
  """Starts JAX's distributed runtime when asked to; idempotent."""
  mode = _MODE.value
  address = _ADDRESS.value or os.environ.get('JAX_COORDINATOR_ADDRESS')
  if mode == 'off' and address is None:
    return
  if mode == 'auto':
    jax.distributed.initialize()
    return
  count = _COUNT.value if _COUNT.value is not None else int(
      os.environ.get('JAX_NUM_PROCESSES', '0'))
  rank = _RANK.value if _RANK.value is not None else int(
      os.environ.get('JAX_PROCESS_ID', '-1'))
  if not address or count < 1 or not 0 <= rank < count:
    raise SystemExit(
        'error: --distributed=explicit needs --coordinator_address=HOST:PORT, '
        '--num_processes=N >= 1 and --process_id in [0, N) (or the '
        'JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID '
        f'variables); got {address!r}, {count}, {rank}')
  if jax.config.jax_platforms in (None, '', 'cpu'):
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(address, num_processes=count, process_id=rank)
