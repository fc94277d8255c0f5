"""FedAvg, FedOpt and FedProx on the shared vmapped round."""

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax import aggregation
from fedmchain_jax import client
from fedmchain_jax.algorithms import base
from fedmchain_jax.data import federated
from fedmchain_jax.types import FederatedAlgorithm, LossFn, PRNGKey, ServerState


def fedavg(loss_fn: LossFn,
           client_optimizer: optax.GradientTransformation,
           server_optimizer: optax.GradientTransformation,
           num_local_steps: int,
           cohort_size: int,
           batch_size: int,
           prox_mu: float = 0.0) -> FederatedAlgorithm:
  """Federated averaging with a server optimizer, optionally FedProx.

  Each cohort client c runs S steps of `client_optimizer` from the global
  params w on

    L_c(v) = loss_fn(v) + (prox_mu / 2) ||v - w||^2,

  giving delta_c = v_c - w. The server averages the deltas by client weight,
  Delta = sum_c n_c delta_c / sum_c n_c, and applies -Delta as a gradient
  through `server_optimizer` (`optax.sgd(1.0)` is plain FedAvg, McMahan et
  al. 2017; others give FedOpt, Reddi et al. 2021; prox_mu > 0 is FedProx,
  Li et al. 2020).

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)`.
    client_optimizer: local optimizer, re-initialized every round.
    server_optimizer: applied to the averaged pseudo-gradient.
    num_local_steps: S.
    cohort_size: C.
    batch_size: B.
    prox_mu: FedProx proximal weight; 0 is FedAvg.

  Returns:
    A `FederatedAlgorithm`. Metrics per round: 'train/loss' and
    'train/accuracy' (weighted client means over local steps),
    'comm/upload_bytes' and 'comm/download_bytes' (this round, dense float
    updates), 'clients/participating'.

  Example:
    >>> algorithm = fedavg(loss_fn, optax.sgd(0.1), optax.sgd(1.0), 5, 8, 16)
    >>> state = algorithm.init(params)
    >>> run_round = jax.jit(algorithm.run_round)
    >>> state, metrics = run_round(state, data, jax.random.key(0))
  """

  def client_update(global_params, batches, key):
    if prox_mu:
      def local_loss(params, batch, step_key):
        loss, metrics = loss_fn(params, batch, step_key)
        distance = sum(jnp.sum((p - g)**2) for p, g in zip(
            jax.tree.leaves(params), jax.tree.leaves(global_params)))
        return loss + 0.5 * prox_mu * distance, metrics
    else:
      local_loss = loss_fn
    return client.local_train(local_loss, client_optimizer, global_params,
                              batches, key)

  def run_cohort(state: ServerState, cohort: federated.Cohort,
                 key: PRNGKey):
    _, train_key = base.round_keys(key, state.round)
    keys = base.client_keys(train_key, cohort.client_ids)
    outputs = jax.vmap(client_update, in_axes=(None, 0, 0))(
        state.params, federated.cohort_batches(cohort), keys)
    delta = aggregation.weighted_mean(outputs.delta, cohort.weights)
    new_state = base.server_step(state, delta, server_optimizer)
    participating = (cohort.weights > 0).sum()
    model_bytes = base.tree_bytes(state.params)
    metrics = {
        f'train/{name}': aggregation.weighted_mean(value, cohort.weights)
        for name, value in outputs.metrics.items()
    }
    # float32: an int32 count overflows past 2 GiB a round.
    round_bytes = participating.astype(jnp.float32) * float(model_bytes)
    metrics['comm/upload_bytes'] = round_bytes
    metrics['comm/download_bytes'] = round_bytes
    metrics['clients/participating'] = participating
    return new_state, metrics

  return FederatedAlgorithm(
      init=lambda params: base.init_state(params, server_optimizer),
      run_cohort=run_cohort,
      run_round=base.with_sampling(run_cohort, cohort_size, num_local_steps,
                                   batch_size),
      num_local_steps=num_local_steps,
  )
