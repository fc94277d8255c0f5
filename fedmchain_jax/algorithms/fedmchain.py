"""FedMChain (arXiv 2606.01856) and its ablations on the composed round."""

from typing import Callable, Sequence

import optax

from fedmchain_jax import aggregators
from fedmchain_jax import client
from fedmchain_jax import losses
from fedmchain_jax import models
from fedmchain_jax import placement as placement_lib
from fedmchain_jax import uploads
from fedmchain_jax.algorithms import rounds
from fedmchain_jax.types import FederatedAlgorithm

CHAIN_RULES = ('fixed', 'rotate')
LOCAL_TRAININGS = ('chain', 'joint')


def chain_orders(order: Sequence[str], rule: str) -> list[tuple[str, ...]]:
  """The orders a chain cycles through: [order], or its M rotations."""
  order = tuple(order)
  if rule == 'fixed':
    return [order]
  if rule == 'rotate':
    return [order[i:] + order[:i] for i in range(len(order))]
  raise ValueError(f'chain rule must be one of {CHAIN_RULES}, got {rule!r}')


def fedmchain(apply_fn: Callable,
              modalities: Sequence[str],
              client_optimizer: optax.GradientTransformation,
              server_optimizer: optax.GradientTransformation,
              steps_per_phase: int,
              cohort_size: int,
              batch_size: int,
              num_clients: int,
              *,
              local_training: str = 'chain',
              chain_order: Sequence[str] | None = None,
              chain_rule: str = 'rotate',
              regularizer: client.Regularizer = client.Regularizer(),
              rho: float = 0.1,
              error_feedback: bool = True,
              aggregator: aggregators.Aggregator | None = None,
              ogm_alpha: float = 0.0,
              ogm_noise: bool = True,
              placement: placement_lib.Placement = placement_lib.Placement(),
              faults=None) -> FederatedAlgorithm:
  """FedMChain: chained modality phases, sparse upload, sign-guided consensus.

  Each client runs one phase per modality (`client.chain`) with the
  error-compensated `regularizer`, sends each block (every modality encoder,
  the classifier) sparsified to its top `rho` by magnitude with optional
  error feedback (`uploads.top_fraction`), and the server merges each block
  by SSCA (`aggregators.ssca`) before its optax step. docs/algorithm.md has
  the equations.

  The same factory builds the ablations and the joint-training baselines:
  `local_training='joint'` (FedAvg's local work on the fused loss, with
  OGM-GE modulation when `ogm_alpha > 0`), `aggregator=weighted_mean()`,
  `rho=1`, `ssca(max_groups=1, tau=-2)` (plain TIES over clients),
  `regularizer.lam=0`.

  Args:
    apply_fn: `apply_fn(params, features, modality_mask, only)`.
    modalities: the modality names.
    client_optimizer, server_optimizer: optax optimizers. The server's
      takes the aggregate's negation as its gradient: `optax.sgd(1.0)` is
      the literal reconstruction (w <- w + U); `optax.adam(3e-3)` is the
      experiments' default, chosen on validation (docs/algorithm.md).
    steps_per_phase: S_p; a client takes M * S_p steps a round, in total the
      same as FedAvg with S = M * S_p (joint training takes M * S_p too).
    cohort_size, batch_size: C and B.
    num_clients: N (rows of the error-feedback table).
    local_training: 'chain' or 'joint'.
    chain_order: the chain's modality order (default: `modalities`).
    chain_rule: 'fixed' or 'rotate' (order shifted by one every round).
    regularizer: `client.Regularizer`.
    rho: the share of each block's entries a client sends, in (0, 1].
    error_feedback: keep per-client residuals of what was not sent.
    aggregator: default `aggregators.ssca()`.
    ogm_alpha, ogm_noise: OGM-GE settings for `local_training='joint'`.
    placement, faults: of `rounds.compose`.

  Returns:
    A `FederatedAlgorithm`.
  """
  modalities = tuple(modalities)
  num_steps = len(modalities) * steps_per_phase
  if local_training not in LOCAL_TRAININGS:
    raise ValueError(f'local_training must be one of {LOCAL_TRAININGS}, got '
                     f'{local_training!r}')
  if local_training == 'chain':
    update = client.chain(apply_fn, modalities, client_optimizer,
                          steps_per_phase,
                          chain_orders(chain_order or modalities, chain_rule),
                          regularizer)
  elif ogm_alpha > 0:
    update = client.ogm_ge(apply_fn, modalities, client_optimizer, num_steps,
                           ogm_alpha, ogm_noise)
  else:
    fused = lambda p, f, m: apply_fn(p, f, m, None)
    update = client.joint(losses.fused_classification_loss(fused),
                          client_optimizer, num_steps)
  return rounds.compose(
      update,
      uploads.top_fraction(rho, error_feedback, num_clients),
      aggregator or aggregators.ssca(), server_optimizer, cohort_size,
      batch_size, blocks=models.parameter_blocks(modalities),
      placement=placement, faults=faults)
