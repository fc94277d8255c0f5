"""Shared types and the dimension letters used in every docstring.

Dimension letters:
  N: clients in the population.
  C: clients in a round's cohort.
  M: modalities.
  E: examples per client after padding (the largest client's size).
  S: local steps per round (per phase for FedMChain).
  B: examples per local batch.
  P: model parameters.
  K: classes.
  T: held-out (test) examples.

Modality-indexed values are dicts keyed by modality name (`{'image': ...,
'audio': ...}`), so no code depends on an implicit modality order; JAX flattens
dicts in sorted key order, which fixes the order wherever one is needed.
"""

from typing import Any, Callable, Mapping, NamedTuple

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # A pytree of arrays.
PyTree = Any
Metrics = dict[str, Array]
Batch = Mapping[str, Any]

# loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics).
# `batch` holds leaves [B, ...]: 'features' {modality: [B, ...]}, 'label' [B],
# 'mask' [B] (False for padding examples) and 'modality_mask' {modality: []}.
LossFn = Callable[[Params, Batch, PRNGKey], tuple[Array, Metrics]]


class ServerState(NamedTuple):
  """What the server carries from one round to the next.

  Attributes:
    params: the global model.
    opt_state: the server optax optimizer's state.
    round: int32 scalar, the number of rounds completed.
    client_states: per-client persistent state with leaves [N, ...] (for
      example error-feedback residuals), or an empty dict when the algorithm
      keeps none.
  """
  params: Params
  opt_state: Any
  round: Array
  client_states: PyTree


class FederatedAlgorithm(NamedTuple):
  """An algorithm as a pair of pure functions, in the style of optax.

  Attributes:
    init: `init(params) -> ServerState`.
    run_cohort: `run_cohort(state, cohort, key) -> (state, metrics)`: one
      round on an already gathered cohort (leaves [C, S, B, ...]).
    run_round: `run_round(state, data, key) -> (state, metrics)`: one whole
      round (cohort sampling included) on device-resident `FederatedData`.
      `key` is the run's base key; the round key is
      `fold_in(key, state.round)`, so keys are never stored.
    num_local_steps: steps each client takes per round (S in cohort shapes).
    train_cohort: `train_cohort(state, cohort, key) -> (trained, metrics)`,
      the round's first half on a gathered cohort: vmapped local training,
      handing over what the upload reads (`algorithms.rounds.Trained`).
    aggregate: `aggregate(state, cohort, trained, metrics, key) -> (state,
      metrics)`, the second half: upload, aggregation and server step, from
      `train_cohort`'s output or from a deltas tree [C, ...] (a per-client
      loop's). `run_cohort` is `aggregate` of `train_cohort`, bit for bit.
    local_update: the per-client function `train_cohort` vmaps,
      `local_update(params, batches, present, key, round) -> (params,
      metrics)` (for a per-client loop, e.g. the benchmark's baseline).
  """
  init: Callable[..., ServerState]
  run_cohort: Callable[..., tuple[ServerState, Metrics]]
  run_round: Callable[..., tuple[ServerState, Metrics]]
  num_local_steps: int
  train_cohort: Callable[..., Any] = None
  aggregate: Callable[..., tuple[ServerState, Metrics]] = None
  local_update: Callable[..., Any] = None
