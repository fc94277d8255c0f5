"""Client-side local training: a `lax.scan` over local steps."""

from typing import NamedTuple

import jax
import optax

from fedmchain_jax import determinism
from fedmchain_jax.data import federated
from fedmchain_jax.types import Batch, LossFn, Metrics, Params, PRNGKey


class ClientOutput(NamedTuple):
  """What one client's local training returns.

  Attributes:
    delta: trained params minus the params it started from.
    metrics: {name: scalar}, each the mean over local steps.
  """
  delta: Params
  metrics: Metrics


def step_batch(batches, index):
  """Step `index` of a client's batches: each leaf's row `index`, or
  `batches.step(index)` for batches gathered lazily (`data.DrawnBatches`)."""
  if isinstance(batches, federated.DrawnBatches):
    return batches.step(index)
  return jax.tree.map(lambda x: x[index], batches)


def num_steps_of(batches) -> int:
  """S of a client's batches (leaves [S, B, ...] or `data.DrawnBatches`)."""
  if isinstance(batches, federated.DrawnBatches):
    return batches.num_steps
  return jax.tree.leaves(batches)[0].shape[0]


def scan_steps(step, carry, batches, num_steps: int, offset: int = 0):
  """`lax.scan(step, carry, (arange(S), batches[offset:offset + S]))` with
  the first step taken outside the loop.

  Under the cohort's vmap the starting params are shared by all clients
  (off CPU; on CPU each client gets its own copy, see `determinism`):
  inside a scan they would be broadcast to [C, ...] and copied into the
  loop (two fresh [C, P] buffers, 15% of FedAvg's local training on a
  2-core CPU); the first step's output is per client already. Step s reads
  `step_batch(batches, offset + s)` by index, so no sliced copy of the
  batches is made (and `data.DrawnBatches` gathers it only then).
  """
  first = step_batch(batches, offset)
  carry, first_metrics = step(carry, (jax.numpy.int32(0), first))
  if num_steps == 1:
    return carry, jax.tree.map(lambda m: m[None], first_metrics)
  carry, metrics = jax.lax.scan(
      lambda c, i: step(c, (i, step_batch(batches, offset + i))),
      carry, jax.numpy.arange(1, num_steps))
  return carry, jax.tree.map(
      lambda a, b: jax.numpy.concatenate([a[None], b]), first_metrics,
      metrics)


def local_train(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                params: Params, batches: Batch, key: PRNGKey) -> ClientOutput:
  """Runs S optimizer steps on one client.

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)` on leaves [B, ...].
    optimizer: the client optax optimizer; its state starts fresh each round.
    params: the starting (global) params.
    batches: leaves [S, B, ...] or a `data.DrawnBatches`; step s uses
      `step_batch(batches, s)`.
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

  num_steps = num_steps_of(batches)
  (trained, _), metrics = scan_steps(step, (params, optimizer.init(params)),
                                     batches, num_steps)
  delta = jax.tree.map(lambda new, old: new - old, trained, params)
  return ClientOutput(delta, jax.tree.map(
      lambda m: determinism.fixed_order_sum(m) / num_steps,
      metrics))
