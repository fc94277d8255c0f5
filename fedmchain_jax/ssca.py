"""Sparse Sign-guided Consensus Aggregation (SSCA) of one parameter block.

Given the sparse updates X [C, P] of a cohort for one block (zeros off each
client's support), the clients that hold the block, and their weights n_c:

1. Agreement. With ternary signs S = sign(X),
     A = S S^T,   D = |S| |S|^T   (exact integer-valued matrix products),
   a_ij = A_ij / D_ij is the mean sign agreement of clients i and j on their
   common support (0 where they share none), in [-1, 1].
2. Groups. Clients i != j are linked when a_ij > tau; groups are the
   connected components of that graph (label propagation inside the graph).
   The `max_groups` heaviest components (by summed weight) are kept, as a
   static [G, C] membership; clients in lighter components are left out of
   this round's update and counted.
3. Consensus inside group g (TIES-style): the elected sign is
     sigma_g = sign(sum_{c in g} n_c X_c),
   and each coordinate averages only the entries that agree with it:
     U_g = sum_{c in g} n_c X_c [X_c sigma_g > 0] /
           sum_{c in g} n_c [X_c sigma_g > 0]     (0 where nobody agrees),
   or, with `normalize='members'`, over every member of the group (a
   coordinate a member did not send, or sent against sigma_g, counts 0):
     U_g = sum_{c in g} n_c X_c [X_c sigma_g > 0] / sum_{c in g} n_c.
4. Groups combine weighted by their data size W_g = sum_{c in g} n_c:
     U = sum_g W_g U_g / sum_g W_g,
   or U = U_{largest group} with `combine='largest'`.

All shapes are static; cost is two C x C x P sign products (exact in any of
int8, bfloat16 or float32 operands, or as bit counts: on CPU the signs are
packed 32 to a word and A and D counted with popcounts, several times
faster than float32 products; int8 products on accelerators) plus O(G C P)
for the group sums, as matrix products. On a mesh the devices share the
sign products (`sign_agreement(mesh=...)`), bitwise the one-device result,
and with replicated rows the consensus column blocks (`_mesh_columns`).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fedmchain_jax import blockwise
from fedmchain_jax import compression
from fedmchain_jax.types import Array


class SSCAResult(NamedTuple):
  """update [P]; agreement [C, C]; labels [C] component of each client (C for
  non-holders); membership [G, C]; group_weights [G]; support [C] int32,
  the entries each client sent (D's diagonal; 0 for non-holders)."""
  update: Array
  agreement: Array
  labels: Array
  membership: Array
  group_weights: Array
  support: Array


# On CPU the agreement products run in blocks of P only up to this many
# clients: beyond it the C x C x P products cost more than the page faults
# that blocking saves (benchmarks/RESULTS.md).
BLOCKED_AGREEMENT_MAX_CLIENTS = 256

# `default_row_groups` on CPU: clients a group, and at most this many groups,
# for matrix products and for bit counts.
ROW_GROUP_CLIENTS = 256
ROW_GROUPS_MAX = 8
BITS_ROW_GROUP_CLIENTS = 64
BITS_ROW_GROUPS_MAX = 16


def _sent(piece: Array, threshold: Array | None) -> Array:
  """The sparse values of a [C, p] piece: as given, or the entries of dense
  rows that `compression.keep_mask` keeps at each row's threshold."""
  if threshold is None:
    return piece
  return jnp.where(compression.keep_mask(piece, threshold[:, None]), piece,
                   0.0)


# How groups combine (`ssca`).
COMBINES = ('weighted', 'largest')
NORMALIZE = ('senders', 'members')

# `sign_agreement`'s operand types ('auto': 'bits' on CPU, else 'int8').
AGREEMENT_DTYPES = ('auto', 'int8', 'float32', 'bfloat16', 'bits')


def default_row_groups(size: int, dtype: str) -> int:
  """Row groups of `sign_agreement` for C = size clients and its `dtype`.

  On CPU, for 'bits' about 64 clients a group, at most 16; for matrix
  products about 256, at most 8. Elsewhere 1, where more groups did not
  make the round faster (benchmarks/RESULTS.md).
  """
  if jax.default_backend() != 'cpu':
    return 1
  if dtype == 'bits':
    return max(1, min(BITS_ROW_GROUPS_MAX, size // BITS_ROW_GROUP_CLIENTS))
  return max(1, min(ROW_GROUPS_MAX, size // ROW_GROUP_CLIENTS))


def _row_cuts(size: int, groups: int) -> list[tuple[int, int]]:
  cuts = np.linspace(0, size, groups + 1).round().astype(int)
  return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


# Entries packed per `sign_agreement(dtype='bits')` pass: 32 words of 32.
BITS_WIDTH = 32 * 32


def bits_block(size: int) -> int:
  """Default block of `sign_agreement(dtype='bits')` for C = size clients:
  about 2^20 / C entries (a block's packed signs, C x block / 4 bytes, stay
  in cache), a power of two in [1,024, 32,768]."""
  block = 1 << max(0, (2**20 // max(size, 1)).bit_length() - 1)
  return min(32768, max(BITS_WIDTH, block))


def _pack_signs(part: Array, held: Array) -> tuple[Array, Array]:
  """uint32 [r, ceil(p / 1024) * 32] words of the support (entries > 0 or
  < 0) and of the negative entries of part [r, p] in held rows, 32 entries a
  word. Only the last p mod 1,024 columns are padded (with zeros) and packed
  apart: padding all of part made XLA:CPU write a padded copy first."""
  shifts = jnp.arange(32, dtype=jnp.uint32)

  def pack(piece):
    def words(mask):
      bits = (mask & held).reshape(mask.shape[0], -1, 32).astype(jnp.uint32)
      return jnp.sum(bits << shifts, axis=-1, dtype=jnp.uint32)
    negative = piece < 0
    return words((piece > 0) | negative), words(negative)

  size = part.shape[1]
  body = size - size % BITS_WIDTH
  if body == size:
    return pack(part)
  tail = jnp.pad(part[:, body:], ((0, 0), (0, -size % BITS_WIDTH)))
  if body == 0:
    return pack(tail)
  return tuple(jnp.concatenate(pair, axis=1)
               for pair in zip(pack(part[:, :body]), pack(tail)))


def _bit_counts(a: tuple[Array, Array], b: tuple[Array, Array]
                ) -> tuple[Array, Array]:
  """(S_a S_b^T, |S_a| |S_b|^T) int32 from packed signs: on the common
  support (both words' support bits) D counts the entries and the
  disagreeing ones are those whose negative bits differ, so A = D - 2
  disagree: one AND, one XOR, one AND and two popcounts a pair of words."""
  (support_a, negative_a), (support_b, negative_b) = a, b
  common = support_a[:, None, :] & support_b[None, :, :]
  differ = negative_a[:, None, :] ^ negative_b[None, :, :]

  def ones(words):
    return jax.lax.population_count(words).astype(jnp.int32)

  # Both counts in one pass: a word's two popcounts (at most 32 each) in
  # one int32, 11 bits apart, summed 32 words at a time (at most 1,024 a
  # field; short sums fuse with the popcounts, `blockwise.SHORT_SUM`), then
  # taken apart and summed on.
  both = ones(common) + (ones(common & differ) << 11)
  both = both.reshape(both.shape[:2] + (-1, blockwise.SHORT_SUM))
  both = both.sum(-1, dtype=jnp.int32)
  overlap = jnp.sum(both & 2047, axis=-1, dtype=jnp.int32)
  return overlap - 2 * jnp.sum(both >> 11, axis=-1, dtype=jnp.int32), overlap


def _symmetric(pieces: dict, cuts) -> Array:
  """The [C, C] matrix whose (i, j) block is pieces[i, j] for i <= j and
  pieces[j, i]^T below."""
  count = len(cuts)
  return jnp.concatenate([
      jnp.concatenate([pieces[i, j] if i <= j else pieces[j, i].T
                       for j in range(count)], axis=1)
      for i in range(count)], axis=0)


def _pair(a: tuple[Array, ...], b: tuple[Array, ...], dtype: str
          ) -> tuple[Array, Array]:
  """(S_a S_b^T, |S_a| |S_b|^T) of two groups' operands (packed signs for
  'bits', else (signs, |signs|))."""
  if dtype == 'bits':
    return _bit_counts(a, b)
  accumulate = jnp.int32 if dtype == 'int8' else jnp.float32
  return tuple(jax.lax.dot_general(x, y, (((1,), (1,)), ((), ())),
                                   preferred_element_type=accumulate)
               for x, y in zip(a, b))


def _mesh_groups(size: int, row_groups: int, devices: int) -> int:
  """Row groups of the mesh form: at least `row_groups` and 2 per device, a
  multiple of the device count and at most `size` rounded up to it."""
  groups = max(row_groups, 2 * devices)
  groups = -(-groups // devices) * devices
  return min(groups, -(-size // devices) * devices)


def _pair_table(groups: int, devices: int) -> np.ndarray:
  """[devices, turns, 3]: (i, j, real) of the row-group pairs i <= j each
  device computes, dealt out in turn; the last turn of some devices is a
  dummy (0, 0, 0) that adds zeros."""
  pairs = [(i, j) for i in range(groups) for j in range(i, groups)]
  table = np.zeros((devices, -(-len(pairs) // devices), 3), np.int32)
  for n, (i, j) in enumerate(pairs):
    table[n % devices, n // devices] = (i, j, 1)
  return table


def _place_pairs(turn: Array, pieces: list, total: int, rows: int) -> Array:
  """[total, total]: each real pair's [rows, rows] piece at block (i, j)
  and its transpose at (j, i), zeros elsewhere."""
  whole = jnp.zeros((total, total), pieces[0].dtype)
  for (i, j, real), pair in zip(turn, pieces):
    piece = jnp.where(real > 0, pair, 0)
    for (a, b), x in (((i, j), piece),
                      ((j, i), jnp.where(i != j, piece.T, 0))):
      at = (a * rows, b * rows)
      whole = jax.lax.dynamic_update_slice(
          whole, jax.lax.dynamic_slice(whole, at, (rows, rows)) + x, at)
  return whole


def _mesh_counts(values: Array, holders: Array, dtype: str, block: int,
                 threshold: Array | None, row_groups: int,
                 mesh: jax.sharding.Mesh, axis: str,
                 rows_sharded: bool) -> tuple[Array, Array]:
  """(A, D) [C, C] on a mesh: the clients split into g equal row groups (g
  from `_mesh_groups`), and the g (g + 1) / 2 products of groups i <= j
  dealt out in turn to the devices of `axis`, so each device computes
  about C^2 P / (2 devices) pairs instead of all of them. Each device packs
  (or signs) its own clients' rows; the operands are gathered (P / 4 bytes
  a client for 'bits', P for 'int8'); each device adds its blocks (and
  their transposes) into a zero [C, C] matrix, and the matrices are summed
  over the devices. Every entry is one device's integer count plus zeros:
  bitwise the one-device result. Padding rows are non-holders, cut off.
  `rows_sharded`: values' rows are sharded over `axis` (else replicated)."""
  devices = mesh.shape[axis]
  size = values.shape[0]
  groups = _mesh_groups(size, row_groups, devices)
  pad = -size % groups
  total = size + pad
  rows = total // groups
  values = jnp.pad(values, ((0, pad), (0, 0)))
  holders = jnp.pad(holders, (0, pad))
  table = _pair_table(groups, devices)
  # The packed operands are blocked by words of 32 entries.
  step = max(1, block // 32) if dtype == 'bits' and block else block

  def counts(values, holders, threshold=None):
    if not rows_sharded:  # This device's rows of the whole arrays.
      start = jax.lax.axis_index(axis) * (total // devices)
      values, holders, threshold = (
          None if x is None else
          jax.lax.dynamic_slice_in_dim(x, start, total // devices)
          for x in (values, holders, threshold))
    part = values if threshold is None else _sent(values, threshold)
    held = holders[:, None]
    if dtype == 'bits':
      mine = _pack_signs(part, held)
    else:
      mine = (jnp.where(held, jnp.sign(part), 0).astype(dtype),)
    everyone = jax.lax.all_gather(mine, axis, axis=0, tiled=True)
    turn = jnp.asarray(table)[jax.lax.axis_index(axis)]

    def group(operands, g):
      out = tuple(jax.lax.dynamic_slice_in_dim(x, g * rows, rows)
                  for x in operands)
      return out if dtype == 'bits' else (out[0], jnp.abs(out[0]))

    def products(operands):
      return [_pair(group(operands, i), group(operands, j), dtype)
              for i, j, _ in turn]

    blocks = blockwise.reduce(products,
                              lambda x, y: jax.tree.map(jnp.add, x, y),
                              everyone, step)
    return tuple(jax.lax.psum(_place_pairs(turn, [b[n] for b in blocks],
                                           total, rows), axis)
                 for n in range(2))

  # Rows already spread over the devices stay there; replicated rows are
  # not resharded, which could change how XLA lays out their other uses.
  spec = jax.sharding.PartitionSpec(axis if rows_sharded else None)
  operands = (values, holders)
  if threshold is not None:
    operands += (jnp.pad(threshold, (0, pad), constant_values=jnp.inf),)
  agree, overlap = jax.shard_map(
      counts, mesh=mesh, in_specs=(spec,) * len(operands),
      out_specs=(jax.sharding.PartitionSpec(),) * 2)(*operands)
  return agree[:size, :size], overlap[:size, :size]


def _mesh_columns(fn: Callable, values: Array, given: tuple, block: int,
                  mesh: jax.sharding.Mesh, axis: str) -> Array:
  """`blockwise.map_columns(lambda piece: fn(piece, *given), values, block)`
  for values [C, P] replicated on a mesh, its column blocks dealt out in
  turn to the devices of `axis` (block n to device n mod D) and the results
  gathered, so each device computes about P / D columns instead of all P.

  With block > 0 (CPU) the blocks and the tail are those of `map_columns`,
  each computed by the same code on the same shapes: bitwise the
  one-device result there (tested on 8 CPU devices); the tail, under one
  block, is computed on every device. With block = 0 each device takes one
  block of ceil(P / D) columns (values padded with zero columns, whose
  results are cut off); the products then have other
  shapes than one device's single block, so off CPU the result is equal to
  rounding rather than bitwise (not measured).
  """
  devices = mesh.shape[axis]
  size = values.shape[1]
  if not block:
    block = -(-size // devices)
    values = jnp.pad(values, ((0, 0), (0, devices * block - size)))
  blocks, tail = divmod(values.shape[1], block)
  if blocks < 2:  # As map_columns: one piece.
    return fn(values, *given)[:size]
  turns = -(-blocks // devices)

  def columns(values, *given):
    me = jax.lax.axis_index(axis)

    def step(turn, out):
      start = (turn * devices + me) * block
      piece = jax.lax.dynamic_slice_in_dim(values, start, block, axis=1)
      return jax.lax.dynamic_update_index_in_dim(out, fn(piece, *given),
                                                 turn, 0)

    # This device's blocks are me, me + D, ...: (blocks - me) / D of them.
    empty = jax.lax.pcast(jnp.zeros((turns, block), values.dtype), (axis,),
                          to='varying')
    return jax.lax.fori_loop(0, (blocks - me + devices - 1) // devices, step,
                             empty)

  replicated = jax.sharding.PartitionSpec()
  # [turns, D * block]: device d's turn t (block n = t * D + d) at
  # [t, d * block:], so in row-major order the blocks come in order.
  head = jax.shard_map(columns, mesh=mesh,
                       in_specs=(replicated,) * (1 + len(given)),
                       out_specs=jax.sharding.PartitionSpec(None, axis))(
                           values, *given).reshape(-1)[:blocks * block]
  if tail:
    head = jnp.concatenate([head, fn(values[:, blocks * block:], *given)])
  return head[:size]


def sign_agreement(values: Array, holders: Array, dtype: str = 'auto',
                   materialize: bool = False, block: int | None = None,
                   threshold: Array | None = None,
                   row_groups: int | None = None,
                   mesh: jax.sharding.Mesh | None = None,
                   axis: str = 'clients',
                   rows_sharded: bool = False) -> tuple[Array, Array]:
  """Pairwise sign agreement on common support.

  Args:
    values: [C, P] sparse updates.
    holders: [C] bool; rows of non-holders are ignored.
    dtype: the operands' type, each exact: entries are -1, 0, 1 and the
      sums integers below 2^24 for P < 2^24, accumulated in int32 (int8,
      'bits') or float32. 'bits' packs each row's support and negative
      entries 32 to a uint32 word and counts, for every pair of rows, the
      common support (D) and the entries on it whose signs differ, with
      popcounts (`_bit_counts`). 'auto' (the default) is 'bits' on CPU and
      int8 elsewhere, the fastest exact forms measured inside the round on
      each (benchmarks/RESULTS.md; float8 is not offered: Hopper's FP8 units
      accumulate in reduced precision, so it is not exact).
    materialize: compute the sign and support matrices as their own step
      (behind an optimization barrier) before the two products, instead of
      letting XLA fuse sign/abs into the products' operand loads.
    block: accumulate the products over blocks of this many entries of P
      in a loop (0: one product), so that the [C, P] sign and support
      matrices are never written to fresh memory. Default: `bits_block(C)`
      for 'bits'; otherwise on CPU `blockwise.BLOCK` up to
      `BLOCKED_AGREEMENT_MAX_CLIENTS` clients, else 0.
    threshold: [C]; if given, `values` are dense and each row's sparse
      update is its entries at or above its threshold (`compression.
      keep_mask`), selected block by block instead of written whole.
    row_groups: split the clients into this many groups of consecutive rows
      and compute each symmetric product from the blocks (i, j), i <= j,
      only: (g + 1) / (2 g) of the multiply-adds. Default
      `default_row_groups(C, dtype)`. Every setting gives the same bits.
    mesh, axis: with a mesh whose `axis` has several devices, the devices
      share the products (about C^2 P / (2 devices) pairs each, not C^2 P /
      2 on every device; `_mesh_counts`), from operands packed or signed
      where the rows are and then gathered; bitwise the one-device result.
      `materialize` does not apply (the gathered operands are).
    rows_sharded: with `mesh`, the rows of `values` are sharded over `axis`
      (False: replicated on every device).

  Returns:
    (agreement [C, C] float32 in [-1, 1], overlap [C, C] = D).
  """
  if dtype == 'auto':
    dtype = 'bits' if jax.default_backend() == 'cpu' else 'int8'
  if dtype not in AGREEMENT_DTYPES:
    raise ValueError(f'dtype must be one of {AGREEMENT_DTYPES}, got {dtype!r}')
  size = values.shape[0]
  if block is None:
    if dtype == 'bits':
      block = bits_block(size)
    else:
      block = (blockwise.default_block()
               if size <= BLOCKED_AGREEMENT_MAX_CLIENTS else 0)
  if row_groups is None:
    row_groups = default_row_groups(size, dtype)
  if row_groups < 1:
    raise ValueError(f'row_groups must be at least 1, got {row_groups}')
  if mesh is not None and mesh.shape.get(axis, 1) > 1:
    return _finish(*_mesh_counts(values, holders, dtype, block, threshold,
                                 row_groups, mesh, axis, rows_sharded))
  cuts = _row_cuts(size, min(row_groups, size))

  def operands(piece, rows):
    # Each group's rows from the piece directly: slices of one [C, p]
    # operand would be copied before every product.
    part = piece[rows[0]:rows[1]]
    if threshold is not None:
      part = _sent(part, threshold[rows[0]:rows[1]])
    held = holders[rows[0]:rows[1], None]
    if dtype == 'bits':
      return _pack_signs(part, held)
    signs = jnp.where(held, jnp.sign(part), 0).astype(dtype)
    return signs, jnp.abs(signs)

  def products(piece):
    groups = [operands(piece, rows) for rows in cuts]
    if materialize:
      groups = jax.lax.optimization_barrier(groups)
    return {(i, j): _pair(groups[i], groups[j], dtype)
            for i in range(len(cuts)) for j in range(i, len(cuts))}

  # Integer-valued partial sums below 2^24: exact in any order.
  pieces = blockwise.reduce(
      products, lambda a, b: jax.tree.map(jnp.add, a, b), values, block)
  return _finish(*(_symmetric({k: v[n] for k, v in pieces.items()}, cuts)
                   for n in range(2)))


def _finish(agree: Array, overlap: Array) -> tuple[Array, Array]:
  """(A / max(D, 1) float32, D) of the integer-valued counts."""
  agreement = agree.astype(jnp.float32) / jnp.maximum(overlap, 1).astype(
      jnp.float32)
  return agreement, overlap


def connected_components(adjacency: Array) -> Array:
  """Component labels [C] (the smallest member index) of a symmetric graph.

  Min-label propagation with pointer jumping, in a `while_loop` that stops
  when no label changes (at most C sweeps).
  """
  size = adjacency.shape[0]
  linked = adjacency | jnp.eye(size, dtype=bool)
  labels = jnp.arange(size)

  def sweep(state):
    labels, _ = state
    neighbour_min = jnp.min(jnp.where(linked, labels[None, :], size), axis=1)
    new = neighbour_min[neighbour_min]  # Pointer jumping.
    return new, jnp.any(new != labels)

  labels, _ = jax.lax.while_loop(lambda s: s[1], sweep,
                                 (labels, jnp.array(True)))
  return labels


def ssca(values: Array, weights: Array, holders: Array, tau: float,
         max_groups: int, combine: str = 'weighted',
         block: int | None = None,
         threshold: Array | None = None,
         row_groups: int | None = None,
         dtype: str = 'auto',
         materialize: bool = False,
         mesh: jax.sharding.Mesh | None = None,
         axis: str = 'clients',
         rows_sharded: bool = False,
         normalize: str = 'senders') -> SSCAResult:
  """Aggregates one block's sparse updates by sign-guided consensus.

  Args:
    values: [C, P] sparse client updates.
    weights: [C] client weights n_c (0 for padding clients).
    holders: [C] bool, clients that hold and sent this block.
    tau: link threshold on agreement, in [-1, 1).
    max_groups: G, the number of groups kept (static).
    combine: 'weighted' (by group data size) or 'largest'.
    block: work through P in blocks of this many entries; None: the
      defaults of `sign_agreement` and `blockwise.default_block`.
    threshold: [C]; if given, `values` are dense and the sparse updates are
      `jnp.where(compression.keep_mask(values, threshold[:, None]), values,
      0)`, selected block by block (bitwise the same result, one [C, P]
      array fewer).
    row_groups, dtype, materialize, mesh, axis, rows_sharded: of the
      agreement products (`sign_agreement`); no setting changes a bit of
      the result.
    normalize: a group's coordinate is the mean over the 'senders' that
      agree with its sign, or over all the group's 'members' (step 3).

  Returns:
    An `SSCAResult` whose `update` is the merged [P] update.
  """
  if combine not in COMBINES:
    raise ValueError(f'combine must be one of {COMBINES}, got {combine!r}')
  if normalize not in NORMALIZE:
    raise ValueError(f'normalize must be one of {NORMALIZE}, got '
                     f'{normalize!r}')
  size = values.shape[0]
  active = holders & (weights > 0)
  agreement, overlap = sign_agreement(values, active, dtype, materialize,
                                      block=block,
                                      threshold=threshold,
                                      row_groups=row_groups, mesh=mesh,
                                      axis=axis, rows_sharded=rows_sharded)
  adjacency = (agreement > tau) & active[:, None] & active[None, :]
  labels = jnp.where(active, connected_components(adjacency), size)
  component_weight = jax.ops.segment_sum(
      jnp.where(active, weights, 0.0), labels, num_segments=size + 1)[:size]
  group_weights, group_labels = jax.lax.top_k(component_weight,
                                              min(max_groups, size))
  membership = ((labels[None, :] == group_labels[:, None])
                & (group_weights[:, None] > 0))
  weighted = jnp.where(membership, weights[None, :], 0.0)  # [G, C]
  total = jnp.maximum(group_weights.sum(), jnp.finfo(jnp.float32).tiny)

  def consensus(piece, weighted, membership, group_weights, total,
                threshold=None):  # [C, p] -> [p]
    # Rows outside every kept group (zero weight, non-holders, left out)
    # are zeroed: a weight of 0 times their NaN would still be NaN.
    piece = jnp.where(membership.any(axis=0)[:, None],
                      _sent(piece, threshold), 0.0)
    mass = weighted @ piece  # [G, p]
    elected = jnp.sign(mass)
    client_sign = membership.astype(piece.dtype).T @ elected  # [C, p]
    agrees = (piece * client_sign > 0).astype(piece.dtype)
    numerator = weighted @ (piece * agrees)
    if normalize == 'members':
      denominator = jnp.broadcast_to(group_weights[:, None], numerator.shape)
    else:
      denominator = weighted @ agrees
    merged = jnp.where(
        denominator > 0,
        numerator / jnp.where(denominator > 0, denominator, 1.0), 0.0)
    if combine == 'largest':
      return merged[0]
    return jnp.tensordot(group_weights, merged, 1) / total

  given = (weighted, membership, group_weights, total) + (
      () if threshold is None else (threshold,))
  block = blockwise.default_block(block)
  if (mesh is not None and mesh.shape.get(axis, 1) > 1
      and not rows_sharded):
    update = _mesh_columns(consensus, values, given, block, mesh, axis)
  else:
    update = blockwise.map_columns(lambda piece: consensus(piece, *given),
                                   values, block)
  return SSCAResult(update, agreement, labels, membership, group_weights,
                    jnp.diagonal(overlap).astype(jnp.int32))
