"""One federated round composed from its parts, broadcast -> map -> reduce.

  run_round(state, data, key):
    cohort    = draw C clients and their examples           (data)
    trained_c = client_update(w, batches_c, present_c, ...)  (vmapped, map)
    e_c[b]    = upload.prepare(trained_c[b] - w[b], ...)     (per block b)
    message   = upload.encode(e[b], holders_b, keys)
    U[b]      = aggregator(message, n, holders_b)            (reduce)
    w        <- server_optimizer(w, -U)

The parts are factories' NamedTuples: `client.ClientUpdate`,
`uploads.Upload`, `aggregators.Aggregator` and an optax transformation;
`placement.Placement` lays the cohort out (chunks, mesh) and changes no
result. FedAvg is joint local training, the identity upload of the whole
model as one block and the weighted mean; FedMChain is the chain update,
the top-fraction upload with error feedback per block and SSCA.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax import aggregation
from fedmchain_jax import aggregators as aggregators_lib
from fedmchain_jax import blocks as blocks_lib
from fedmchain_jax import client as client_lib
from fedmchain_jax import compression
from fedmchain_jax import determinism
from fedmchain_jax import faults as fault_lib
from fedmchain_jax import placement as placement_lib
from fedmchain_jax import uploads as uploads_lib
from fedmchain_jax.algorithms import base
from fedmchain_jax.data import federated
from fedmchain_jax.types import FederatedAlgorithm, ServerState


class Trained(NamedTuple):
  """What local training hands the upload, per block.

  Attributes:
    rows: {block: [C, P_b]}: the deltas flattened, or once `prepared` the
      rows e_c the upload encodes (`Upload.prepare` taken where each chunk
      of local training ends).
    outside: {key: [C, ...]} deltas of leaves outside every block (checked
      for finiteness, never uploaded); {} once prepared.
    weights: [C] after the finite check once prepared, else None.
    excluded: [C] bool, clients whose delta was not finite, once prepared.
  """
  rows: dict
  outside: dict
  weights: jax.Array | None = None
  excluded: jax.Array | None = None

  @property
  def prepared(self) -> bool:
    return self.weights is not None


def _folds(placement, faults) -> bool:
  """Whether local training takes the upload's first steps where each chunk
  ends: not when attacks must see the raw deltas, nor on a mesh."""
  return placement.mesh is None and not (faults is not None and faults.active)


def compose(client_update: client_lib.ClientUpdate,
            upload: uploads_lib.Upload,
            aggregator: aggregators_lib.Aggregator,
            server_optimizer: optax.GradientTransformation,
            cohort_size: int,
            batch_size: int,
            blocks: blocks_lib.Blocks | None = None,
            placement: placement_lib.Placement = placement_lib.Placement(),
            faults: fault_lib.FaultModel | None = None,
            ) -> FederatedAlgorithm:
  """Builds a round from a client update, an upload, an aggregator.

  Args:
    client_update: each client's local work (`client.ClientUpdate`).
    upload: what clients send per block (`uploads.Upload`).
    aggregator: how the server merges each block (`aggregators.Aggregator`).
    server_optimizer: any optax transformation, applied to -U.
    cohort_size, batch_size: C and B.
    blocks: {name: (top-level param keys, modality or None)}
      (`models.parameter_blocks`); None: the whole model, one block every
      client holds. Keys outside every block are not uploaded: they keep
      the server's values (their finiteness still counts).
    placement: chunks and mesh (`placement.Placement`).
    faults: simulated dropouts, non-finite updates and attackers
      (`fedmchain_jax.faults`). Whatever it is, a client whose delta is not
      finite is excluded from the round ('faults/nonfinite').

  Returns:
    A `FederatedAlgorithm`. Metrics: 'train/*' (weighted client means of the
    update's metrics), 'comm/upload_bytes' (values plus positions or bitmap
    per held block, or dense values), 'comm/download_bytes' (the dense
    model to each client), 'comm/kept_fraction', 'clients/participating',
    'faults/*', and the aggregator's per block (with
    `aggregators.with_metrics`, 'agg/<block>/*').

  Example:
    >>> algorithm = compose(
    ...     client.joint(loss_fn, optax.sgd(0.1), num_steps=5),
    ...     uploads.identity(), aggregators.coordinate_median(),
    ...     optax.sgd(1.0), cohort_size=8, batch_size=16)
    >>> state, metrics = jax.jit(algorithm.run_round)(
    ...     algorithm.init(params), data, jax.random.key(0))
  """
  placement_lib.check(placement)
  folds = _folds(placement, faults)

  def block_map(params):
    return blocks_lib.whole_model(params) if blocks is None else blocks

  def split(params, deltas) -> Trained:
    return Trained(*blocks_lib.split(block_map(params), params, deltas))

  def init(params) -> ServerState:
    states = {name: upload.init(blocks_lib.size(params, keys))
              for _, name, keys, _ in _block_list(block_map(params), params)}
    return base.init_state(params, server_optimizer,
                           {k: v for k, v in states.items() if v is not None})

  def train(state, batches_of, inputs, ids, weights):
    """Local training of the cohort: (`Trained`, metrics [C])."""

    def one(params, x):
      (client_inputs, key), _ = x
      batches, present = batches_of(client_inputs)
      return client_update.update(params, batches, present, key, state.round)

    def finish(out, x):
      trained, metrics = out
      deltas = split(state.params,
                     jax.tree.map(jnp.subtract, trained, state.params))
      return (_prepare(upload, state, deltas, *x[1]) if folds else deltas,
              metrics)

    return placement_lib.map_clients(placement, one, state.params,
                                     (inputs, (ids, weights)), finish)

  def train_cohort(state, cohort, key):
    """Local training of a gathered, padded cohort: (`Trained`, metrics)."""
    keys = base.client_keys(base.round_keys(key, state.round)[1],
                            cohort.client_ids)
    inputs = ((federated.cohort_batches(cohort), dict(cohort.modality_mask)),
              keys)
    return train(state, lambda x: x, inputs, cohort.client_ids,
                 cohort.weights)

  def aggregate(state, cohort, trained, client_metrics, key,
                num_real_clients=None):
    """Upload, aggregation and server step: (new state, metrics).

    `trained`: `train_cohort`'s `Trained`, or a deltas tree [C, ...] (a
    per-client loop's). `num_real_clients`: with a mesh, how many leading
    clients of the cohort are real (the rest pad it); None: all."""
    size = num_real_clients or cohort.weights.shape[0]
    train_key = base.round_keys(key, state.round)[1]
    if not isinstance(trained, Trained):
      trained = split(state.params, trained)
    fault_metrics = {}
    if not trained.prepared:
      weights = cohort.weights
      if faults is not None and faults.active:
        (rows, outside), weights, fault_metrics = fault_lib.apply_faults(
            faults, (trained.rows, trained.outside), weights,
            cohort.client_ids, key, train_key)
        trained = Trained(rows, outside)
      trained = _prepare(upload, state, trained, cohort.client_ids, weights)
      trained = trained._replace(
          rows=placement_lib.shard(placement, trained.rows))
    fault_metrics['faults/nonfinite'] = trained.excluded.sum()
    update, client_states, metrics = _upload_and_aggregate(
        upload, aggregator, placement,
        _block_list(block_map(state.params), state.params), state, cohort,
        trained, base.client_keys(train_key, cohort.client_ids), size)
    new_state = base.server_step(state, placement_lib.replicate(
        placement, update), server_optimizer)
    metrics.update(_round_metrics(placement, state, cohort, trained,
                                  client_metrics, size))
    metrics.update(fault_metrics)
    return new_state._replace(client_states=client_states), metrics

  def run_cohort(state, cohort, key):
    size = cohort.weights.shape[0]
    cohort = placement_lib.pad(placement, cohort)
    trained, metrics = train_cohort(state, cohort, key)
    return aggregate(state, cohort, trained, metrics, key, size)

  def run_round(state, data, key):
    """Samples the round's cohort and runs it: bitwise `run_cohort` of
    `sample_cohort(...)`, each client's batches gathered inside its local
    training (per step when the update reads them with `step_batch`)."""
    draw = federated.draw_cohort(base.round_keys(key, state.round)[0], data,
                                 cohort_size, client_update.num_steps,
                                 batch_size)
    draw = placement_lib.pad(placement, draw)
    keys = base.client_keys(base.round_keys(key, state.round)[1],
                            draw.client_ids)
    gather = (federated.DrawnBatches if client_update.lazy_batches else
              federated.gather_batches)
    inputs = ((draw.client_ids, draw.examples, draw.example_mask,
               dict(draw.modality_mask)), keys)
    trained, metrics = train(state, lambda x: (gather(data, *x), x[3]),
                             inputs, draw.client_ids, draw.weights)
    return aggregate(state, draw, trained, metrics, key, cohort_size)

  return FederatedAlgorithm(
      init=init, run_cohort=run_cohort, run_round=run_round,
      num_local_steps=client_update.num_steps, train_cohort=train_cohort,
      aggregate=aggregate, local_update=client_update.update)


def _block_list(block_map, params):
  """[(index, name, keys, modality)] of the blocks the params have."""
  return [(i, name, blocks_lib.present(params, keys), modality)
          for i, (name, (keys, modality)) in enumerate(block_map.items())
          if blocks_lib.present(params, keys)]


def _round_metrics(placement, state, cohort, trained, client_metrics, size):
  """'train/*' (weighted client means), download bytes, participants."""
  real = placement_lib.for_sum(placement, size)
  weights = real(trained.weights)
  metrics = {f'train/{name}': aggregation.weighted_mean(real(x), weights)
             for name, x in client_metrics.items()}
  metrics['comm/download_bytes'] = (cohort.weights > 0).sum().astype(
      jnp.float32) * float(base.tree_bytes(state.params))
  metrics['clients/participating'] = (weights > 0).sum()
  return metrics


def _prepare(upload, state, trained: Trained, ids, weights) -> Trained:
  """The upload's first steps: the finite check (on the blocks and any
  leaves outside them) and `upload.prepare` of each block's rows."""
  _, weights, excluded = fault_lib.exclude_nonfinite(
      (trained.rows, trained.outside), weights, zero_deltas=False)
  rows = {name: upload.prepare(flat, weights > 0,
                               state.client_states.get(name), ids)
          for name, flat in trained.rows.items()}
  return Trained(rows, {}, weights, excluded)


def _upload_and_aggregate(upload, aggregator, placement, block_list, state,
                          cohort, trained, keys, size):
  """Per block: encode, store, aggregate. Returns (update tree, client
  states, metrics)."""
  real = placement_lib.for_sum(placement, size)
  replicated = placement.mesh is not None and not placement.rows_sharded
  # Leaves outside every block are not uploaded: their update is 0.
  update = jax.tree.map(jnp.zeros_like, dict(state.params))
  client_states, metrics = dict(state.client_states), {}
  upload_bytes = kept_total = sent_total = jnp.zeros((), jnp.float32)
  weights = trained.weights
  for index, name, keys_b, modality in block_list:
    holders = weights > 0
    if modality is not None:
      holders = holders & cohort.modality_mask[modality]
    rows = trained.rows[name]
    message = upload.encode(rows, holders, jax.vmap(
        lambda k, i=index: jax.random.fold_in(k, i))(keys))
    if replicated:  # The rows gathered once, for the store and the sums.
      rows, message = placement_lib.replicate(placement, (rows, message))
    if name in client_states:
      client_states[name] = upload.store(client_states[name],
                                         cohort.client_ids, rows, message)
    message, held = jax.tree.map(real, message), real(holders)
    merged, block_metrics = aggregator.aggregate(message, real(weights), held,
                                                 placement)
    for metric, value in block_metrics.items():
      kind, _, rest = metric.partition('/')
      metrics[f'{kind}/{name}/{rest}'] = value
    block_size = message.rows.shape[1]
    kept = jnp.where(held, message.kept, 0)
    upload_bytes += determinism.fixed_order_sum(jnp.where(
        held, compression.message_bytes(kept, block_size), 0.0))
    kept_total += kept.sum().astype(jnp.float32)
    sent_total += held.sum().astype(jnp.float32) * block_size
    update.update(blocks_lib.unflatten(
        merged, blocks_lib.layout(state.params, keys_b)))
  metrics['comm/upload_bytes'] = upload_bytes
  metrics['comm/kept_fraction'] = kept_total / jnp.maximum(sent_total, 1.0)
  return update, client_states, metrics
