"""FedAvg, FedOpt and FedProx, and FedAvg with OGM-GE: joint local training,
the whole model uploaded dense, weighted mean."""

import optax

from fedmchain_jax import aggregators
from fedmchain_jax import client
from fedmchain_jax import placement as placement_lib
from fedmchain_jax import uploads
from fedmchain_jax.algorithms import rounds
from fedmchain_jax.types import FederatedAlgorithm, LossFn

DEFAULT_PLACEMENT = placement_lib.Placement()


def fedavg(loss_fn: LossFn,
           client_optimizer: optax.GradientTransformation,
           server_optimizer: optax.GradientTransformation,
           num_local_steps: int,
           cohort_size: int,
           batch_size: int,
           prox_mu: float = 0.0,
           *,
           aggregator: aggregators.Aggregator | None = None,
           placement: placement_lib.Placement = DEFAULT_PLACEMENT,
           faults=None) -> FederatedAlgorithm:
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
    aggregator: in place of the weighted mean (e.g.
      `aggregators.coordinate_median()`).
    placement, faults: of `rounds.compose`.

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
  return rounds.compose(
      client.joint(loss_fn, client_optimizer, num_local_steps, prox_mu),
      uploads.identity(), aggregator or aggregators.weighted_mean(),
      server_optimizer, cohort_size, batch_size, placement=placement,
      faults=faults)


def fedavg_ogm_ge(apply_fn, modalities,
                  client_optimizer: optax.GradientTransformation,
                  server_optimizer: optax.GradientTransformation,
                  num_local_steps: int, cohort_size: int, batch_size: int,
                  alpha: float, noise: bool = True, *,
                  aggregator: aggregators.Aggregator | None = None,
                  placement: placement_lib.Placement = DEFAULT_PLACEMENT,
                  faults=None) -> FederatedAlgorithm:
  """FedAvg whose local training applies OGM-GE (`client.ogm_ge`);
  `aggregator` in place of the weighted mean."""
  return rounds.compose(
      client.ogm_ge(apply_fn, modalities, client_optimizer, num_local_steps,
                    alpha, noise),
      uploads.identity(), aggregator or aggregators.weighted_mean(),
      server_optimizer, cohort_size, batch_size, placement=placement,
      faults=faults)
