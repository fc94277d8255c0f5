"""Client-side local training: a `lax.scan` over local steps."""

from typing import NamedTuple

import jax
import optax

from fedmchain_jax import determinism
from fedmchain_jax.types import Batch, LossFn, Metrics, Params, PRNGKey


class ClientOutput(NamedTuple):
  """What one client's local training returns.

  Attributes:
    delta: trained params minus the params it started from.
    metrics: {name: scalar}, each the mean over local steps.
  """
  delta: Params
  metrics: Metrics


def local_train(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                params: Params, batches: Batch, key: PRNGKey) -> ClientOutput:
  """Runs S optimizer steps on one client.

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)` on leaves [B, ...].
    optimizer: the client optax optimizer; its state starts fresh each round.
    params: the starting (global) params.
    batches: leaves [S, B, ...]; step s uses `batches[s]`.
    key: the client's key for this round; step s uses `fold_in(key, s)`.

  Returns:
    A `ClientOutput`; vmap this function over a leading clients axis.
  """
  grad_fn = jax.grad(loss_fn, has_aux=True)

  def step(carry, inputs):
    current, opt_state = carry
    index, batch = inputs
    grads, metrics = grad_fn(current, batch, jax.random.fold_in(key, index))
    updates, opt_state = optimizer.update(grads, opt_state, current)
    return (optax.apply_updates(current, updates), opt_state), metrics

  num_steps = jax.tree.leaves(batches)[0].shape[0]
  (trained, _), metrics = jax.lax.scan(
      step, (params, optimizer.init(params)),
      (jax.numpy.arange(num_steps), batches))
  delta = jax.tree.map(lambda new, old: new - old, trained, params)
  return ClientOutput(delta, jax.tree.map(
      lambda m: determinism.fixed_order_sum(m) / num_steps,
      metrics))
