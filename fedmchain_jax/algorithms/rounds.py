"""One federated round assembled from parts: local update, upload, aggregator.

  run_cohort(state, cohort, key):
    trained_c = local_update(w, batches_c, present_c, key_c, round)  (vmapped)
    delta_c   = trained_c - w
    per block b (each modality encoder, the classifier):
      e_c   = delta_c[b] + residual_c[b]            (error feedback, optional)
      x_c   = top-fraction(e_c, rho)  if c holds b  else 0
      residual_c[b] <- e_c - x_c
      U[b]  = mean_c(n_c x_c)  or  SSCA(x, n, holders_b)
    w <- server_optimizer(w, -U)

FedAvg is this round with joint local training, no blocks (the whole model
dense) and the weighted mean; FedMChain is the chain update, rho < 1 and SSCA.
With blocks, on one device and without active faults, each chunk of local
training computes its clients' e_c (after the finite check) where their
training ends, as clients would (`train_clients`' `upload`).
"""

import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax import aggregation
from fedmchain_jax import blockwise
from fedmchain_jax import compression
from fedmchain_jax import determinism
from fedmchain_jax import faults as fault_lib
from fedmchain_jax import ssca
from fedmchain_jax.algorithms import base
from fedmchain_jax.data import federated
from fedmchain_jax.types import FederatedAlgorithm, PRNGKey, ServerState

AGGREGATORS = ('mean', 'ssca')
MESH_REDUCTIONS = ('replicated', 'sharded')
CLIENTS_AXIS = 'clients'
Blocks = Mapping[str, tuple[Sequence[str], str | None]]


def _present(params, keys: Sequence[str]) -> tuple[str, ...]:
  return tuple(k for k in keys if k in params)


def _block_layout(params, keys: Sequence[str]):
  """(treedef, shapes, sizes) of the sub-tree params[keys]."""
  leaves, treedef = jax.tree.flatten({k: params[k] for k in keys})
  return (treedef, [x.shape for x in leaves],
          [math.prod(x.shape) for x in leaves])


def _flatten_block(tree, keys: Sequence[str], num_clients: int):
  """[C, P_b]: the block's leaves of a tree (leading axis C), concatenated."""
  leaves = jax.tree.leaves({k: tree[k] for k in keys})
  return jnp.concatenate([x.reshape(num_clients, -1) for x in leaves], axis=1)


def _unflatten_block(vector, layout):
  """The sub-tree of a flattened block [..., P_b] (leading axes kept)."""
  treedef, shapes, sizes = layout
  pieces, start = [], 0
  for shape, size in zip(shapes, sizes):
    pieces.append(vector[..., start:start + size].reshape(
        vector.shape[:-1] + shape))
    start += size
  return jax.tree.unflatten(treedef, pieces)


def _split_blocks(blocks, params, deltas):
  """({block: [C, P_b]}, {key: leaf outside every block}) of a deltas tree.

  Local training returns its deltas in this form, the blocks flattened as
  the upload reads them (`_flatten_block`): a chunked run then writes each
  block once, where its chunk's training ends, and the round reads it there.
  `_join_blocks` gives the deltas tree back as slices of the blocks, which
  XLA folds into the upload's own `_split_blocks`. (Before, every [C, ...]
  leaf took a subtract pass after the chunks and every block a
  concatenation: the reference FedMChain round in chunks of 4 took 826-863
  ms against 673-782 now on 2 cores; benchmarks/RESULTS.md.) Bitwise the
  same deltas.
  """
  size = jax.tree.leaves(deltas)[0].shape[0]
  flats = {name: _flatten_block(deltas, _present(params, keys), size)
           for name, (keys, _) in blocks.items() if _present(params, keys)}
  outside = {k: v for k, v in deltas.items()
             if not any(k in keys for keys, _ in blocks.values())}
  return flats, outside


def _join_blocks(split, blocks, params):
  """The deltas tree (leading axis C) of `_split_blocks`' output."""
  flats, outside = split
  deltas = dict(outside)
  for name, flat in flats.items():
    layout = _block_layout(params, _present(params, blocks[name][0]))
    deltas.update(_unflatten_block(flat, layout))
  return deltas


def _store_residuals(table, ids, flat, threshold):
  """table.at[ids].set(where(keep_mask(flat, threshold), 0, flat),
  mode='drop'), one row at a time in place: on CPU this skips writing the
  [C, P] residuals out before the scatter (2 cores, C = 64, P = 267k: 9.6
  against 30 ms). Only the rows whose ids are inside the table are visited
  (padding ids are dropped, as the scatter drops them), so no row of the
  table is read back and XLA computes each residual row inside its in-place
  update (14.5 ms when every row was visited and kept its old value for a
  padding id)."""
  inside = (ids >= 0) & (ids < table.shape[0])
  rows = jnp.argsort(~inside, stable=True)  # Inside rows first, in order.

  def store(i, table):
    c = rows[i]
    row = flat[c]
    residual = jnp.where(compression.keep_mask(row, threshold[c]), 0.0, row)
    return jax.lax.dynamic_update_index_in_dim(table, residual, ids[c], 0)

  return jax.lax.fori_loop(0, inside.sum(), store, table)


def _fold_upload(flat, sending, table, ids):
  """e_c = where(sending_c, delta_c, 0) + residual_c (no residual: no table).

  Rows that send nothing (weight 0: padding, dropped or non-finite clients)
  are zeroed, so their residuals come back unchanged from the store."""
  flat = jnp.where(sending[:, None], flat, 0.0)
  if table is not None:
    flat = flat + table[ids]
  return flat


def compose(local_update: Callable,
            server_optimizer: optax.GradientTransformation,
            num_local_steps: int,
            cohort_size: int,
            batch_size: int,
            blocks: Blocks | None = None,
            fraction: float = 1.0,
            error_feedback: bool = False,
            num_clients: int | None = None,
            aggregator: str = 'mean',
            tau: float = 0.0,
            max_groups: int = 4,
            combine: str = 'weighted',
            threshold_options: Mapping[str, float] | None = None,
            agreement_dtype: str = 'auto',
            agreement_row_groups: int | None = None,
            agreement_materialize: bool = False,
            chunk_size: int | None = None,
            mesh: jax.sharding.Mesh | None = None,
            faults: fault_lib.FaultModel | None = None,
            mesh_reduction: str = 'replicated',
            step_batches: bool = False,
            ) -> FederatedAlgorithm:
  """Builds a round from a local update, an upload rule and an aggregator.

  Args:
    local_update: `local_update(params, batches, present, key, round_index)
      -> (trained params, metrics)`; see `fedmchain_jax.chain`.
    server_optimizer: applied to -U.
    num_local_steps: S, batches per client per round.
    cohort_size: C.
    batch_size: B.
    blocks: {name: (top-level param keys, modality or None)} (see
      `models.parameter_blocks`); a block tied to modality m is held only by
      clients with m. Top-level keys outside every block are not uploaded:
      they stay at the server's values (their finiteness still counts, see
      `faults.exclude_nonfinite`). None: the whole model is one dense block
      that every client sends (FedAvg; `fraction`, `error_feedback` and
      `aggregator` must then be left at their defaults).
    fraction: rho, the share of each block's entries a client sends.
    error_feedback: keep per-client residuals (a [N, P_b] table per block in
      `ServerState.client_states`); needs `num_clients`.
    num_clients: N, for the residual table.
    aggregator: 'mean' (weighted by n_c over all cohort clients, as FedAvg)
      or 'ssca' (`fedmchain_jax.ssca`).
    tau, max_groups, combine: SSCA's link threshold, number of groups kept,
      and how groups combine.
    threshold_options: keyword arguments of `compression.magnitude_threshold`.
    agreement_dtype, agreement_row_groups, agreement_materialize: how SSCA
      computes its sign agreement (`ssca.sign_agreement`'s `dtype`,
      `row_groups` and `materialize`; 'auto', None and False: bit counts in
      row groups on CPU, one int8 product with the operands fused into it
      elsewhere). Speed only: every setting gives the same bits.
    chunk_size: train the cohort in chunks of this many clients (vmap inside
      a `lax.map`; 1 runs as 2), bounding memory by the chunk; None trains
      all C at once. Results equal the unchunked round.
    mesh: a `jax.sharding.Mesh` with an axis named 'clients': the cohort is
      padded with zero-weight clients to a multiple of that axis and its
      leaves sharded over it (DrJAX style); server state stays replicated.
      Per-client work (local training, faults, top-fraction thresholds)
      runs in that layout, and the devices share SSCA's sign-agreement
      products (`ssca.sign_agreement(mesh=...)`, exact in either
      `mesh_reduction`) and, with 'replicated', its consensus column
      blocks. None: plain vmap on the default device.
    mesh_reduction: how a mesh round sums over clients (the mean, SSCA,
      metrics). 'replicated': every device gathers the real clients' rows
      once (padding dropped; for the error-feedback store too) and sums
      them as one device would, so the round is bitwise the same on any
      number of devices (with `determinism.compiler_options()` on CPU);
      memory C x P_b per device.
      'sharded': each device sums its own clients and the partial sums are
      all-reduced; memory C / D x P_b, results equal to about 1e-7.
    faults: simulated dropouts, non-finite updates and attackers
      (`fedmchain_jax.faults`). Whatever it is, a client whose delta is not
      finite is excluded from the round ('faults/nonfinite').
    step_batches: `local_update` reads its batches only through
      `client.step_batch` and `client.num_steps_of` (as `local.py`'s updates
      do), so `run_round` may pass a `data.DrawnBatches` that gathers each
      step's batches when it is read: the cohort's [C, S, B, ...] batches
      are never held whole. False (the default, safe for any update):
      `run_round` passes each client a dict of [S, B, ...] leaves, gathered
      per client (per chunk with `chunk_size`).

  Returns:
    A `FederatedAlgorithm`. Metrics: 'train/*' (weighted client means of the
    local update's metrics), 'comm/upload_bytes' (what the clients would
    send: values plus positions or bitmap per held block, or the dense
    model), 'comm/download_bytes' (the dense model to each client),
    'clients/participating', and with blocks 'comm/kept_fraction' and, for
    SSCA, 'ssca/<block>/groups' and 'ssca/<block>/left_out'.
  """
  if mesh_reduction not in MESH_REDUCTIONS:
    raise ValueError(f'mesh_reduction must be one of {MESH_REDUCTIONS}, got '
                     f'{mesh_reduction!r}')
  if aggregator not in AGGREGATORS:
    raise ValueError(f'aggregator must be one of {AGGREGATORS}, got '
                     f'{aggregator!r}')
  dense = isinstance(fraction, (int, float)) and fraction >= 1.0
  if blocks is None and (not dense or error_feedback or aggregator != 'mean'):
    raise ValueError('sparsification, error feedback and SSCA need blocks')
  if error_feedback and num_clients is None:
    raise ValueError('error_feedback needs num_clients')
  if agreement_dtype not in ssca.AGREEMENT_DTYPES:
    raise ValueError(f'agreement_dtype must be one of '
                     f'{ssca.AGREEMENT_DTYPES}, got {agreement_dtype!r}')
  if agreement_row_groups is not None and agreement_row_groups < 1:
    raise ValueError(f'agreement_row_groups must be None or at least 1, got '
                     f'{agreement_row_groups}')
  threshold_options = dict(threshold_options or {})

  def init(params) -> ServerState:
    client_states = {}
    if error_feedback:
      for name, (keys, _) in blocks.items():
        if not _present(params, keys):
          continue
        size = sum(_block_layout(params, _present(params, keys))[2])
        client_states[name] = jnp.zeros((num_clients, size), jnp.float32)
    return base.init_state(params, server_optimizer, client_states)

  def residual_table(state, name):
    return state.client_states[name] if error_feedback else None

  def upload_and_aggregate(state, cohort, flats, keys, real, folded=False):
    """`flats`: the deltas' blocks (`_split_blocks`), or with `folded` the
    rows e_c that local training wrote (`_fold_upload`).
    Returns (update tree, new client states, metrics)."""
    weights = cohort.weights
    # Leaves outside every block are not uploaded: their update is 0.
    update = jax.tree.map(jnp.zeros_like, dict(state.params))
    client_states = dict(state.client_states)
    metrics = {}
    upload = jnp.zeros((), jnp.float32)
    kept_total = jnp.zeros((), jnp.float32)
    sent_total = 0.0
    for index, (name, (block_keys, modality)) in enumerate(blocks.items()):
      block_keys = _present(state.params, block_keys)
      if not block_keys:
        continue
      layout = _block_layout(state.params, block_keys)
      block_size = sum(layout[2])
      flat = flats[name]
      if not folded:
        flat = _fold_upload(flat, weights > 0, residual_table(state, name),
                            cohort.client_ids)
      if mesh is not None:
        # Each device finds its own clients' thresholds (XLA otherwise
        # gathers the rows first and every device finds all of them).
        flat = _constrain(flat)
      holders = weights > 0
      if modality is not None:
        holders = holders & cohort.modality_mask[modality]
      block_keys_c = jax.vmap(lambda k, i=index: jax.random.fold_in(k, i))(keys)
      if dense:
        sent = jnp.where(holders[:, None], flat, 0.0)
        kept = (blockwise.count_true(flat != 0) if aggregator == 'mean'
                else None)
        threshold = None
      else:
        # The sent values are where(keep_mask(flat, threshold), flat, 0);
        # they are selected where used (in SSCA block by block) rather than
        # written as one more [C, P] array. Non-holders send nothing. SSCA
        # counts what each client sent (its `support`), so only the mean
        # needs a count pass here.
        threshold = jax.vmap(lambda x, k: compression.magnitude_threshold(
            x, fraction, k, **threshold_options))(flat, block_keys_c)
        threshold = jnp.where(holders, threshold, jnp.inf)
        kept = (jax.vmap(lambda x, t: compression.count_at_least(
            x, t, nonzero=True))(flat, threshold)
                if aggregator == 'mean' else None)
        sent = flat
      if mesh is not None and mesh_reduction == 'replicated':
        # The rows gathered once, for the residual store and the sums.
        flat, sent, threshold = (None if x is None else _replicate(x)
                                 for x in (flat, sent, threshold))
      if error_feedback:
        table = state.client_states[name]
        # What was not sent (bitwise flat - sent); for rows of weight 0 the
        # residual itself.
        if threshold is None:
          client_states[name] = table.at[cohort.client_ids].set(
              flat - sent, mode='drop')
        elif mesh is None and jax.default_backend() == 'cpu':
          client_states[name] = _store_residuals(table, cohort.client_ids,
                                                 flat, threshold)
        else:
          client_states[name] = table.at[cohort.client_ids].set(
              jnp.where(compression.keep_mask(flat, threshold[:, None]), 0.0,
                        flat), mode='drop')
      holders, sent_weights = real(holders), real(weights)
      sent = real(sent)
      if threshold is not None:
        threshold = real(threshold)
      if aggregator == 'mean':
        if threshold is not None:
          sent = jnp.where(compression.keep_mask(sent, threshold[:, None]),
                           sent, 0.0)
        merged = aggregation.weighted_mean(sent, sent_weights)
        kept = real(kept)
      else:
        result = ssca.ssca(sent, sent_weights, holders, tau, max_groups,
                           combine, threshold=threshold,
                           row_groups=agreement_row_groups,
                           dtype=agreement_dtype,
                           materialize=agreement_materialize,
                           mesh=mesh, axis=CLIENTS_AXIS,
                           rows_sharded=mesh_reduction == 'sharded')
        merged = result.update
        metrics[f'ssca/{name}/groups'] = (result.group_weights > 0).sum()
        metrics[f'ssca/{name}/left_out'] = (
            holders.sum() - result.membership.sum())
        kept = result.support
      kept = jnp.where(holders, kept, 0)
      upload += determinism.fixed_order_sum(jnp.where(
          holders, compression.message_bytes(kept, block_size), 0.0))
      kept_total += kept.sum().astype(jnp.float32)
      sent_total += holders.sum().astype(jnp.float32) * block_size
      update.update(_unflatten_block(merged, layout))
    metrics['comm/upload_bytes'] = upload
    metrics['comm/kept_fraction'] = kept_total / jnp.maximum(sent_total, 1.0)
    return update, client_states, metrics

  def train_clients(state: ServerState, batches_of, inputs, keys,
                    upload=None):
    """vmapped (chunked) local training: `batches_of(inputs_c)` gives client
    c's (batches, present); returns (deltas [C, ...], metrics [C]).

    `upload`: None, or the cohort's ([C] ids, [C] weights) with blocks: then
    each chunk also takes its clients' first upload steps where its training
    ends, the finite check and `_fold_upload` (zeroing and error feedback),
    and the deltas come back as ({block: [C, P_b] e_c}, [C] weights, [C]
    excluded), as `fault_lib.exclude_nonfinite` gives them. Bitwise
    what `aggregate` computes from the deltas, without its passes over the
    cohort's [C, P_b] rows (and the fresh [C, P_b] buffer the error-feedback
    add wrote, mostly page faults on CPU; benchmarks/RESULTS.md).
    """
    size = keys.shape[0]

    def one(client_inputs, key, params):
      batches, present = batches_of(client_inputs)
      return local_update(params, batches, present, key, state.round)

    def trained_clients(chunk):
      """vmapped local training of a chunk (leaves [n, ...]) of clients."""
      chunk_inputs, chunk_keys = chunk
      if jax.default_backend() != 'cpu':
        # Shared starting params: the first local step's products are one
        # [n B, K] x [K, N] product for the whole chunk.
        return jax.vmap(one, in_axes=(0, 0, None))(chunk_inputs, chunk_keys,
                                                    state.params)
      # On CPU each client starts from its own copy, so that every product
      # is a client's own [B, K] x [K, N] whatever n is (`determinism`).
      width = chunk_keys.shape[0]
      params = jax.tree.map(
          lambda p: jnp.broadcast_to(p, (width,) + p.shape), state.params)
      return jax.vmap(one)(chunk_inputs, chunk_keys, params)

    def train(chunk):
      """A chunk's deltas (packed where there are blocks) and metrics: the
      subtraction runs where the chunk's training ends, not as one more
      pass over the cohort's [C, ...] params."""
      chunk, chunk_upload = chunk[:2], chunk[2]
      trained, metrics = trained_clients(chunk)
      deltas = jax.tree.map(lambda new, old: new - old, trained, state.params)
      if blocks:
        deltas = _split_blocks(blocks, state.params, deltas)
      if chunk_upload is not None:
        ids, weights = chunk_upload
        _, weights, excluded = fault_lib.exclude_nonfinite(
            deltas, weights, zero_deltas=False)
        flats = {name: _fold_upload(flat, weights > 0,
                                    residual_table(state, name), ids)
                 for name, flat in deltas[0].items()}
        deltas = (flats, weights, excluded)
      return deltas, metrics

    # At least 2 clients a chunk: XLA:CPU contracts a lone client's weight
    # gradient as a plain product, in another order than a batch's.
    width = None if chunk_size is None else max(chunk_size, 2)
    if width is None or width >= size:
      deltas, client_metrics = train((inputs, keys, upload))
    else:
      # vmap inside a scan over chunks: memory follows the chunk, not C. The
      # last chunk is filled with copies of client 0 (dropped after) rather
      # than run at a smaller width: XLA:CPU reduces a lone client's [B]
      # losses in another order than a batch of clients' [n, B].
      padded = federated.pad_rows((inputs, keys, upload), -size % width)
      chunks = jax.tree.map(
          lambda x: x.reshape((-1, width) + x.shape[1:]), padded)
      deltas, client_metrics = jax.tree.map(
          lambda x: x.reshape((-1,) + x.shape[2:])[:size],
          jax.lax.map(train, chunks))
    if upload is not None:
      return deltas, client_metrics
    if blocks:
      deltas = _join_blocks(deltas, blocks, state.params)
    if mesh is not None:
      deltas = _constrain(deltas)
    return deltas, client_metrics

  def train_cohort(state: ServerState, cohort: federated.Cohort,
                   key: PRNGKey, fold_upload=False):
    """Local training of every cohort client: (deltas [C, ...], metrics [C]).

    `fold_upload`: also take the upload's first steps per chunk, as
    `run_cohort` does (`train_clients`' `upload`); the deltas then come
    back in the form `aggregate(..., fold_upload=True)` takes.
    """
    check_fold(fold_upload)
    _, train_key = base.round_keys(key, state.round)
    keys = base.client_keys(train_key, cohort.client_ids)
    return train_clients(
        state, lambda x: x,
        (federated.cohort_batches(cohort), dict(cohort.modality_mask)), keys,
        (cohort.client_ids, cohort.weights) if fold_upload else None)

  def train_draw(state: ServerState, data: federated.FederatedData,
                 draw: federated.CohortDraw, key: PRNGKey,
                 fold_upload=False):
    """`train_cohort` of `gather_cohort(data, draw)`, the batches gathered
    inside local training: per step with `step_batches`
    (`federated.DrawnBatches`), else per client."""
    _, train_key = base.round_keys(key, state.round)
    keys = base.client_keys(train_key, draw.client_ids)
    inputs = (draw.client_ids, draw.examples, draw.example_mask,
              dict(draw.modality_mask))
    gather = (federated.DrawnBatches if step_batches else
              federated.gather_batches)
    return train_clients(
        state, lambda x: (gather(data, *x), x[3]), inputs, keys,
        (draw.client_ids, draw.weights) if fold_upload else None)

  def reduction_layout(size):
    """x -> the operand of a sum over clients (see `mesh_reduction`)."""
    def real(x):
      if mesh is None or mesh_reduction == 'sharded':
        return x
      return _replicate(x)[:size]
    return real

  def _replicate(x):
    return jax.lax.with_sharding_constraint(
        x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))

  def folds_upload():
    """Whether local training may take the upload's first steps
    (`train_clients`' `upload`): with blocks, on one device, and without
    active faults (attacks act on the raw deltas). `run_round` and
    `run_cohort` then always do."""
    return (blocks is not None and mesh is None and
            not (faults is not None and faults.active))

  def check_fold(fold):
    if fold and not folds_upload():
      raise ValueError(
          'fold_upload needs blocks, no mesh and no active faults; this '
          'round has ' + ('no blocks' if blocks is None else
                          'a mesh' if mesh is not None else 'active faults'))

  def aggregate(state: ServerState, cohort: federated.Cohort, deltas,
                client_metrics, key: PRNGKey, num_real_clients=None,
                fold_upload=False):
    """Upload, aggregation and the server step: (new state, metrics).

    `cohort`: a `Cohort` or a `CohortDraw` (its ids, masks and weights are
    used, not its batches).

    `num_real_clients`: with a mesh, how many leading clients of the cohort
    are real (the rest pad it); None: all.

    `fold_upload`: `deltas` is what `train_cohort(..., fold_upload=True)`
    returned, the upload's first steps already taken (as `run_cohort` runs
    it).
    """
    check_fold(fold_upload)
    real = reduction_layout(num_real_clients or cohort.weights.shape[0])
    _, train_key = base.round_keys(key, state.round)
    keys = base.client_keys(train_key, cohort.client_ids)
    fault_metrics = {}
    weights = cohort.weights
    downloading = (weights > 0).sum()
    if faults is not None and faults.active:
      deltas, weights, fault_metrics = fault_lib.apply_faults(
          faults, deltas, weights, cohort.client_ids, key, train_key)
    if fold_upload:
      flats, weights, excluded = deltas
    elif blocks is None:
      deltas, weights, excluded = fault_lib.exclude_nonfinite(deltas, weights)
    else:
      # Checked on the flattened blocks, which local training wrote (see
      # `_split_blocks`), and on any leaves outside them; the sparse upload
      # zeroes the excluded clients' rows.
      flats, outside = _split_blocks(blocks, state.params, deltas)
      _, weights, excluded = fault_lib.exclude_nonfinite(
          (flats, outside), weights, zero_deltas=False)
    fault_metrics['faults/nonfinite'] = excluded.sum()
    cohort = cohort._replace(weights=weights)
    real_weights = real(weights)
    participating = (real_weights > 0).sum()
    model_bytes = participating.astype(jnp.float32) * float(
        base.tree_bytes(state.params))
    if blocks is None:
      update = aggregation.weighted_mean(jax.tree.map(real, deltas),
                                         real_weights)
      client_states = state.client_states
      metrics = {'comm/upload_bytes': model_bytes}
    else:
      update, client_states, metrics = upload_and_aggregate(
          state, cohort, flats, keys, real, fold_upload)
    if mesh is not None:
      update = jax.lax.with_sharding_constraint(
          update,
          jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    new_state = base.server_step(state, update, server_optimizer)
    new_state = new_state._replace(client_states=client_states)
    metrics.update({
        f'train/{name}': aggregation.weighted_mean(real(value), real_weights)
        for name, value in client_metrics.items()
    })
    metrics['comm/download_bytes'] = downloading.astype(jnp.float32) * float(
        base.tree_bytes(state.params))
    metrics['clients/participating'] = participating
    metrics.update(fault_metrics)
    return new_state, metrics

  def _constrain(tree):
    sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(CLIENTS_AXIS))
    return jax.tree.map(
        lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)

  def pad_for_mesh(cohort):
    if mesh is None:
      return cohort
    # At least 2 clients per device: a device holding one client would
    # reduce its losses in another order (see train_clients).
    devices = mesh.shape[CLIENTS_AXIS]
    return _constrain(federated.pad_cohort(
        cohort, devices, min_size=2 * devices if devices > 1 else 1))

  def run_cohort(state: ServerState, cohort: federated.Cohort, key: PRNGKey):
    size = cohort.weights.shape[0]
    cohort = pad_for_mesh(cohort)
    fold = folds_upload()
    deltas, client_metrics = train_cohort(state, cohort, key, fold)
    return aggregate(state, cohort, deltas, client_metrics, key, size, fold)

  def run_round(state: ServerState, data: federated.FederatedData,
                key: PRNGKey):
    """Samples the round's cohort and runs it: bitwise `run_cohort` of
    `sample_cohort(...)`, with the batches gathered inside local training
    (`train_draw`: per step with `step_batches`, else per client)."""
    sample_key, _ = base.round_keys(key, state.round)
    draw = federated.draw_cohort(sample_key, data, cohort_size,
                                 num_local_steps, batch_size)
    draw = pad_for_mesh(draw)
    fold = folds_upload()
    deltas, client_metrics = train_draw(state, data, draw, key, fold)
    return aggregate(state, draw, deltas, client_metrics, key, cohort_size,
                     fold)

  return FederatedAlgorithm(
      init=init,
      run_cohort=run_cohort,
      train_cohort=train_cohort,
      aggregate=aggregate,
      local_update=local_update,
      run_round=run_round,
      num_local_steps=num_local_steps,
  )
