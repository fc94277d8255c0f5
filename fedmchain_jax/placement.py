"""Where a round's per-client work runs: chunks of clients, a device mesh.

A `Placement` says how the cohort is laid out; it changes no result (the
tests check chunked == whole cohort and 1 device == 8 devices, bitwise on
CPU with `determinism.compiler_options()`), only memory and speed:

- `chunk_size`: local training runs as a `lax.map` over chunks of this many
  clients, each chunk vmapped, so memory follows the chunk, not C;
- `mesh`: a `jax.sharding.Mesh` with an axis named 'clients' (DrJAX
  style): the cohort is padded with zero-weight clients to a multiple of it
  and its leaves sharded over it; server state stays replicated;
- `mesh_reduction`: how a mesh round sums over clients. 'replicated':
  every device gathers the real clients' rows once and sums them as one
  device would (bitwise the one-device round; memory C x P_b per device).
  'sharded': each device sums its own clients and the partial sums are
  all-reduced (memory C / D x P_b; equal to about 1e-7).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fedmchain_jax.data import federated

CLIENTS_AXIS = 'clients'
MESH_REDUCTIONS = ('replicated', 'sharded')


class Placement(NamedTuple):
  """How a round lays out its cohort (see the module docstring)."""
  chunk_size: int | None = None
  mesh: jax.sharding.Mesh | None = None
  mesh_reduction: str = 'replicated'

  @property
  def rows_sharded(self) -> bool:
    """Whether the rows a sum over clients reads stay sharded."""
    return self.mesh is not None and self.mesh_reduction == 'sharded'


def check(placement: Placement) -> None:
  """Raises ValueError naming a setting outside what is allowed."""
  if placement.mesh_reduction not in MESH_REDUCTIONS:
    raise ValueError(f'mesh_reduction must be one of {MESH_REDUCTIONS}, got '
                     f'{placement.mesh_reduction!r}')
  if placement.chunk_size is not None and placement.chunk_size < 1:
    raise ValueError(f'chunk_size must be None or at least 1, got '
                     f'{placement.chunk_size}')


def pad_rows(tree, extra: int):
  """Appends `extra` copies of row 0 to every leaf's leading axis."""
  return jax.tree.map(
      lambda x: jnp.concatenate(
          [x, jnp.broadcast_to(x[:1], (extra,) + x.shape[1:])]), tree)


def pad_cohort(cohort, multiple: int, min_size: int = 1):
  """Appends zero-weight clients so C is a multiple of `multiple`, >= min_size.

  `cohort`: a `Cohort` or a `CohortDraw`.

  Padding clients copy client 0's inputs (any finite values do), get weight 0
  (so they change nothing) and id `data.PADDING_ID`, past any population:
  gathers of per-client state clamp it and scatters drop it.
  """
  size = cohort.weights.shape[0]
  target = max(size, min_size)
  extra = target + (-target % multiple) - size
  if extra == 0:
    return cohort
  padded = pad_rows(cohort, extra)
  return padded._replace(
      client_ids=padded.client_ids.at[size:].set(federated.PADDING_ID),
      weights=padded.weights.at[size:].set(0.0))


def shard(placement: Placement, tree):
  """Leaves [C, ...] sharded over the mesh's clients axis (no mesh: as is)."""
  if placement.mesh is None:
    return tree
  sharding = jax.sharding.NamedSharding(
      placement.mesh, jax.sharding.PartitionSpec(CLIENTS_AXIS))
  return jax.tree.map(
      lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def replicate(placement: Placement, tree):
  """Leaves replicated on every device of the mesh (no mesh: as is)."""
  if placement.mesh is None:
    return tree
  sharding = jax.sharding.NamedSharding(placement.mesh,
                                        jax.sharding.PartitionSpec())
  return jax.tree.map(
      lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def pad(placement: Placement, cohort):
  """The cohort padded and sharded for the mesh (no mesh: as is).

  At least 2 clients a device: a device holding one client would reduce its
  losses in another order (see `map_clients`)."""
  if placement.mesh is None:
    return cohort
  devices = placement.mesh.shape[CLIENTS_AXIS]
  return shard(placement, pad_cohort(
      cohort, devices, min_size=2 * devices if devices > 1 else 1))


def for_sum(placement: Placement, size: int) -> Callable:
  """x [C_padded, ...] -> the operand of a sum over the `size` real clients.

  With 'replicated' the rows are gathered once and the padding dropped, so
  the sum runs as on one device; otherwise the rows stay where they are
  (padding clients have weight 0)."""
  def operand(x):
    if placement.mesh is None or placement.rows_sharded:
      return x
    return replicate(placement, x)[:size]
  return operand


def _vmap_clients(client_fn: Callable, params, inputs):
  """vmap of client_fn(params, inputs_c) over inputs' leading axis."""
  if jax.default_backend() != 'cpu':
    # Shared starting params: the first local step's products are one
    # [n B, K] x [K, N] product for the whole chunk.
    return jax.vmap(client_fn, in_axes=(None, 0))(params, inputs)
  # On CPU each client starts from its own copy, so that every product is a
  # client's own [B, K] x [K, N] whatever n is (`determinism`).
  width = jax.tree.leaves(inputs)[0].shape[0]
  copies = jax.tree.map(lambda p: jnp.broadcast_to(p, (width,) + p.shape),
                        params)
  return jax.vmap(client_fn)(copies, inputs)


def map_clients(placement: Placement, client_fn: Callable, params, inputs,
                finish: Callable = lambda out, inputs: out):
  """finish(vmap(client_fn)(params, inputs), inputs), chunk by chunk.

  Args:
    placement: its `chunk_size` (None: the whole cohort at once).
    client_fn: `client_fn(params, inputs_c) -> out_c`, one client.
    params: the starting params, shared by every client.
    inputs: a pytree of leaves [C, ...].
    finish: `finish(out, inputs) -> result`, run on each chunk's outputs
      (leaves [n, ...]) where its training ends, so a per-client pass over
      the outputs is not one more pass over [C, ...] buffers.

  Returns:
    finish's result for all C clients (leaves [C, ...]), the chunks joined.
  """
  size = jax.tree.leaves(inputs)[0].shape[0]

  def run(chunk):
    return finish(_vmap_clients(client_fn, params, chunk), chunk)

  # At least 2 clients a chunk: XLA:CPU contracts a lone client's weight
  # gradient as a plain product, in another order than a batch's.
  width = None if placement.chunk_size is None else max(placement.chunk_size,
                                                        2)
  if width is None or width >= size:
    return run(inputs)
  # The last chunk is filled with copies of client 0 (dropped after) rather
  # than run at a smaller width: XLA:CPU reduces a lone client's [B] losses
  # in another order than a batch of clients' [n, B].
  padded = pad_rows(inputs, -size % width)
  chunks = jax.tree.map(lambda x: x.reshape((-1, width) + x.shape[1:]),
                        padded)
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:])[:size],
                      jax.lax.map(run, chunks))
