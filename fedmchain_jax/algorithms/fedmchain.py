"""FedMChain (arXiv 2606.01856) and its ablations on the composed round."""

from typing import Callable, Sequence

import optax

from fedmchain_jax import local
from fedmchain_jax import losses
from fedmchain_jax import models
from fedmchain_jax.algorithms import rounds
from fedmchain_jax.types import FederatedAlgorithm

CHAIN_RULES = ('fixed', 'rotate')


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
              regularizer: local.Regularizer = local.Regularizer(),
              fraction: float = 0.1,
              error_feedback: bool = True,
              aggregator: str = 'ssca',
              tau: float = 0.0,
              max_groups: int = 4,
              combine: str = 'weighted',
              ogm_alpha: float = 0.0,
              ogm_noise: bool = True,
              **round_options) -> FederatedAlgorithm:
  """FedMChain: chained modality phases, sparse upload, sign-guided consensus.

  Each client runs one phase per modality (`local.chain_update`) with the
  error-compensated `regularizer`, sends each block (every modality encoder,
  the classifier) sparsified to its top `fraction` by magnitude with
  optional error feedback, and the server merges each block by SSCA
  (`fedmchain_jax.ssca`) before its optax step. docs/algorithm.md has the
  equations.

  The same factory builds the ablations and the joint-training baselines:
  `local_training='joint'` (FedAvg's local work on the fused loss, with
  OGM-GE modulation when `ogm_alpha > 0`), `aggregator='mean'`,
  `fraction=1`, `max_groups=1` with `tau=-1` (plain TIES over clients),
  `regularizer.lam=0`.

  Args:
    apply_fn: `apply_fn(params, features, modality_mask, only)`.
    modalities: the modality names.
    client_optimizer, server_optimizer: optax optimizers.
    steps_per_phase: S_p; a client takes M * S_p steps a round, in total the
      same as FedAvg with S = M * S_p (joint training takes M * S_p too).
    cohort_size, batch_size: C and B.
    num_clients: N (size of the error-feedback table).
    local_training: 'chain' or 'joint'.
    chain_order: the chain's modality order (default: `modalities`).
    chain_rule: 'fixed' or 'rotate' (order shifted by one every round).
    regularizer: `local.Regularizer`.
    fraction: rho in (0, 1].
    error_feedback: keep per-client residuals of what was not sent.
    aggregator: 'ssca' or 'mean'.
    tau, max_groups, combine: SSCA settings.
    ogm_alpha, ogm_noise: OGM-GE settings for `local_training='joint'`.
    **round_options: `chunk_size`, `mesh`, `mesh_reduction`, `faults` of
      `rounds.compose`.

  Returns:
    A `FederatedAlgorithm`.
  """
  modalities = tuple(modalities)
  num_steps = len(modalities) * steps_per_phase
  if local_training == 'chain':
    orders = chain_orders(chain_order or modalities, chain_rule)
    update = local.chain_update(apply_fn, modalities, client_optimizer,
                                steps_per_phase, orders, regularizer)
  elif local_training == 'joint':
    if ogm_alpha > 0:
      update = local.ogm_ge_update(apply_fn, modalities, client_optimizer,
                                   ogm_alpha, ogm_noise)
    else:
      fused = lambda p, f, m: apply_fn(p, f, m, None)
      update = local.joint_update(losses.fused_classification_loss(fused),
                                  client_optimizer)
  else:
    raise ValueError(f"local_training must be 'chain' or 'joint', got "
                     f'{local_training!r}')
  return rounds.compose(
      update, server_optimizer, num_steps, cohort_size, batch_size,
      blocks=models.parameter_blocks(modalities),
      fraction=fraction, error_feedback=error_feedback,
      num_clients=num_clients, aggregator=aggregator, tau=tau,
      max_groups=max_groups, combine=combine, step_batches=True,
      **round_options)
