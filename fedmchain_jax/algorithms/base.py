"""Round machinery shared by the algorithms: keys, server step, state."""

import numbers

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


def scan_rounds(run_round, num_rounds: int):
  """`num_rounds` consecutive rounds as one function, for one jitted call.

  `scan_rounds(run_round, K)(state, data, key) -> (state, metrics)` runs
  `run_round` K times in a `lax.scan`, cohort sampling included (each round
  draws from `fold_in(key, state.round)` as usual), and returns the state
  after the K-th round and every round's metrics stacked on a leading [K]
  axis. Bitwise the same as K calls of the jitted `run_round` (same compiler
  options); it saves the per-round dispatch and host round trip, which is
  what small models on accelerators wait on.

  Args:
    run_round: `FederatedAlgorithm.run_round`, `(state, data, key) ->
      (state, metrics)`.
    num_rounds: K >= 1.

  Raises:
    ValueError: if `num_rounds` is not a positive integer.
  """
  if (not isinstance(num_rounds, numbers.Integral) or
      isinstance(num_rounds, bool) or num_rounds < 1):
    raise ValueError(f'num_rounds={num_rounds!r}: must be an integer >= 1')

  def run_rounds(state: ServerState, data, key: PRNGKey):
    def body(state, _):
      return run_round(state, data, key)
    return jax.lax.scan(body, state, None, length=int(num_rounds))

  return run_rounds


def tree_bytes(tree) -> int:
  """Bytes of a dense pytree of arrays (static)."""
  return sum(x.size * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))
