"""How the server merges one block's uploads: the aggregation stage.

An aggregator is a factory's `Aggregator`, a NamedTuple holding

  aggregate(message, weights, holders, placement) -> (update [P_b], metrics)

with `message` the cohort's `uploads.Message` for the block, `weights` [C]
the clients' n_c (0 for clients that send nothing this round), `holders`
[C] bool the clients that hold the block and send it, and `placement` the
round's `placement.Placement` (an aggregator may ignore it; SSCA uses its
mesh to share work). Metrics are scalars named '<kind>/<name>'; the round
reports them per block as '<kind>/<block>/<name>'.

Factories: `weighted_mean()` (FedAvg), `ssca(...)` (FedMChain's sparse
sign-guided consensus, `fedmchain_jax.ssca`), and two robust aggregators
written against the interface alone: `coordinate_median()` and
`trimmed_mean(trim)`. `with_metrics(aggregator)` adds 'agg/*' metrics of
what the update is made of to any of them. A user aggregator is one more
such NamedTuple passed to `algorithms.compose`; docs/api.md shows one.
"""

from typing import Callable, NamedTuple

import jax.numpy as jnp

from fedmchain_jax import aggregation
from fedmchain_jax import placement as placement_lib
from fedmchain_jax import ssca as ssca_lib
from fedmchain_jax.types import Array


class Aggregator(NamedTuple):
  """The aggregation stage (see the module docstring)."""
  aggregate: Callable


def weighted_mean() -> Aggregator:
  """U = sum_c n_c x_c / sum_c n_c over every client that sends (an entry a
  client did not send counts as 0)."""

  def aggregate(message, weights, holders, placement):
    del holders, placement
    return aggregation.weighted_mean(message.values(), weights), {}

  return Aggregator(aggregate)


def ssca(tau: float = 0.0, max_groups: int = 4, combine: str = 'weighted',
         agreement_dtype: str = 'auto', row_groups: int | None = None,
         materialize: bool = False, normalize: str = 'members'
         ) -> Aggregator:
  """Sparse sign-guided consensus (`fedmchain_jax.ssca.ssca`).

  Args:
    tau: link threshold on pairwise sign agreement, in [-1, 1).
    max_groups: G, groups kept.
    combine: 'weighted' (by group data size) or 'largest'.
    normalize: a coordinate's mean over all the group's 'members' (the
      default, chosen on validation: docs/RESULTS.md) or over its agreeing
      'senders' (the literal TIES mean) (`ssca.ssca`).
    agreement_dtype, row_groups, materialize: how the sign agreement is
      computed (`ssca.sign_agreement`); every setting gives the same bits.

  Returns:
    An `Aggregator`; metrics 'agg/groups' (groups of positive weight),
    'agg/clients_kept' and 'agg/weight_kept' (the share of the senders,
    and of their weight n_c, in a kept group).
  """
  if combine not in ssca_lib.COMBINES:
    raise ValueError(f'combine must be one of {ssca_lib.COMBINES}, got '
                     f'{combine!r}')
  if normalize not in ssca_lib.NORMALIZE:
    raise ValueError(f'normalize must be one of {ssca_lib.NORMALIZE}, got '
                     f'{normalize!r}')
  if agreement_dtype not in ssca_lib.AGREEMENT_DTYPES:
    raise ValueError(f'agreement_dtype must be one of '
                     f'{ssca_lib.AGREEMENT_DTYPES}, got {agreement_dtype!r}')
  if row_groups is not None and row_groups < 1:
    raise ValueError(f'agreement_row_groups must be None or at least 1, got '
                     f'{row_groups}')

  def aggregate(message, weights, holders, placement):
    result = ssca_lib.ssca(
        message.rows, weights, holders, tau, max_groups, combine,
        threshold=message.threshold, row_groups=row_groups,
        dtype=agreement_dtype, materialize=materialize, mesh=placement.mesh,
        axis=placement_lib.CLIENTS_AXIS, rows_sharded=placement.rows_sharded,
        normalize=normalize)
    sending = holders & (weights > 0)
    kept = result.membership.any(axis=0) & sending
    return result.update, {
        'agg/groups': (result.group_weights > 0).sum(),
        'agg/clients_kept': kept.sum() / jnp.maximum(sending.sum(), 1),
        'agg/weight_kept': (jnp.where(kept, weights, 0.0).sum() /
                            jnp.maximum(jnp.where(sending, weights, 0.0)
                                        .sum(), 1e-30))}

  return Aggregator(aggregate)


def with_metrics(aggregator: Aggregator) -> Aggregator:
  """`aggregator` that also reports what its update is made of.

  Over the clients S that send the block, with s_j the count of them whose
  sent entry j is non-zero: 'agg/senders' (the mean s_j over coordinates
  anyone sent), 'agg/single_sender' (the share of those one client alone
  sent) and 'agg/norm_ratio' (||U|| over the norm of the dense weighted
  mean of the rows e_c the clients encoded; 1 for the mean of dense
  uploads). Costs passes over the [C, P_b] rows and their buffers, hence a
  wrapper: the study turns it on (`eval.aggregation_metrics`).
  """

  def aggregate(message, weights, holders, placement):
    update, metrics = aggregator.aggregate(message, weights, holders,
                                           placement)
    sending = holders & (weights > 0)
    senders = jnp.sum((message.values() != 0) & sending[:, None], axis=0,
                      dtype=jnp.int32)
    sent = jnp.maximum((senders > 0).sum(), 1).astype(jnp.float32)
    dense = aggregation.weighted_mean(
        jnp.where(sending[:, None], message.rows, 0.0),
        jnp.where(sending, weights, 0.0))
    return update, {**metrics,
                    'agg/senders': senders.sum() / sent,
                    'agg/single_sender': (senders == 1).sum() / sent,
                    'agg/norm_ratio': jnp.linalg.norm(update) / jnp.maximum(
                        jnp.linalg.norm(dense), 1e-30)}

  return Aggregator(aggregate)


def _sorted_holder_values(message, weights, holders) -> tuple[Array, Array]:
  """(values [C, P_b] sorted along clients with non-senders last, [] count
  of senders)."""
  sending = holders & (weights > 0)
  values = jnp.where(sending[:, None], message.values(), jnp.inf)
  return jnp.sort(values, axis=0), sending.sum()


def coordinate_median() -> Aggregator:
  """Per coordinate, the median over the clients that send the block (an
  entry a client did not send counts as 0; Yin et al., ICML 2018). Client
  weights only select the senders: the median is unweighted. 0 where
  nobody sends."""

  def aggregate(message, weights, holders, placement):
    del placement
    ordered, count = _sorted_holder_values(message, weights, holders)
    low = ordered[jnp.maximum(count - 1, 0) // 2]
    high = ordered[count // 2]
    return jnp.where(count > 0, 0.5 * (low + high), 0.0), {}

  return Aggregator(aggregate)


def trimmed_mean(trim: float = 0.1) -> Aggregator:
  """Per coordinate, the mean over the senders after dropping the
  floor(trim h) smallest and largest of the h values (an entry a client
  did not send counts as 0; Yin et al., ICML 2018). Unweighted; 0 where
  nobody sends.

  Args:
    trim: beta in [0, 0.5), the share cut from each end.
  """
  if not 0.0 <= trim < 0.5:
    raise ValueError(f'trim must be in [0, 0.5), got {trim}')

  def aggregate(message, weights, holders, placement):
    del placement
    ordered, count = _sorted_holder_values(message, weights, holders)
    cut = jnp.floor(trim * count).astype(jnp.int32)
    rank = jnp.arange(ordered.shape[0])[:, None]
    kept = (rank >= cut) & (rank < count - cut)
    total = jnp.sum(jnp.where(kept, ordered, 0.0), axis=0)
    return total / jnp.maximum(count - 2 * cut, 1), {}

  return Aggregator(aggregate)
