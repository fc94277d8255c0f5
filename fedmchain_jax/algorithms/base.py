"""Round machinery shared by the algorithms: keys, server step, state."""

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax.types import Array, Params, PRNGKey, ServerState


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
