"""Round machinery shared by the algorithms: keys, server step, sampling."""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax.data import federated
from fedmchain_jax.types import Array, Metrics, Params, PRNGKey, ServerState


def round_keys(key: PRNGKey, round_index: Array) -> tuple[PRNGKey, PRNGKey]:
  """(sampling key, training key) of a round, derived from the run's key."""
  sample_key, train_key = jax.random.split(jax.random.fold_in(key, round_index))
  return sample_key, train_key


def client_keys(train_key: PRNGKey, client_ids: Array) -> PRNGKey:
  """One key per cohort member, [C], derived from its population index.

  Deriving from the id rather than the cohort position makes a client's
  local training independent of where it sits in the cohort (permutation and
  chunking invariance).
  """
  return jax.vmap(lambda i: jax.random.fold_in(train_key, i))(client_ids)


def server_step(state: ServerState, delta: Params,
                optimizer: optax.GradientTransformation) -> ServerState:
  """Applies the aggregated client delta through the server optimizer.

  The pseudo-gradient is -delta, so `optax.sgd(1.0)` gives FedAvg's
  `params + delta` and any optax optimizer gives FedOpt.
  """
  pseudo_grad = jax.tree.map(jnp.negative, delta)
  updates, opt_state = optimizer.update(pseudo_grad, state.opt_state,
                                        state.params)
  return state._replace(params=optax.apply_updates(state.params, updates),
                        opt_state=opt_state, round=state.round + 1)


def init_state(params: Params, optimizer: optax.GradientTransformation,
               client_states=None) -> ServerState:
  return ServerState(params=params, opt_state=optimizer.init(params),
                     round=jnp.zeros((), jnp.int32),
                     client_states={} if client_states is None else client_states)


def tree_bytes(tree) -> int:
  """Bytes of a dense pytree of arrays (static)."""
  return sum(x.size * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def with_sampling(run_cohort: Callable[..., tuple[ServerState, Metrics]],
                  cohort_size: int, num_steps: int, batch_size: int
                  ) -> Callable[..., tuple[ServerState, Metrics]]:
  """Turns `run_cohort(state, cohort, key)` into `run_round(state, data, key)`.

  The cohort is gathered inside the same traced function, so a jitted
  `run_round` is the whole round in one XLA program.
  """

  def run_round(state: ServerState, data: federated.FederatedData,
                key: PRNGKey) -> tuple[ServerState, Metrics]:
    sample_key, _ = round_keys(key, state.round)
    cohort = federated.sample_cohort(sample_key, data, cohort_size, num_steps,
                                     batch_size)
    return run_cohort(state, cohort, key)

  return run_round
