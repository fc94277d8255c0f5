"""Faulty and adversarial clients, simulated inside the jitted round.

Applied to the cohort's model deltas between local training and upload:

- dropout: each cohort client independently fails to report this round with
  probability `dropout_rate` (its weight becomes 0);
- non-finite: each reporting client independently sends an update full of
  NaN/Inf with probability `nonfinite_rate`;
- attackers: a fixed set of clients (client i is one when
  u_i < `attack_fraction`, u_i ~ U(0, 1) drawn once from the run key and i)
  replace their delta by one of
    'sign_flip': -delta,
    'scale':     `attack_scale` * delta,
    'noise':     Gaussian noise with the norm of delta.

Whatever the fault model, a client whose delta is not finite is excluded
(`exclude_nonfinite`): weight 0, delta zeroed. Draws derive from the run key,
the round and the client id, so a resumed run repeats them.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fedmchain_jax import blockwise
from fedmchain_jax.types import Array, Metrics, PRNGKey, PyTree

ATTACKS = ('none', 'sign_flip', 'scale', 'noise')
_FAULT_STREAM = 0x0FA17
_ATTACK_STREAM = 0xA77AC


class FaultModel(NamedTuple):
  dropout_rate: float = 0.0
  nonfinite_rate: float = 0.0
  attack_fraction: float = 0.0
  attack: str = 'none'
  attack_scale: float = 10.0

  @property
  def active(self) -> bool:
    return bool(self.dropout_rate or self.nonfinite_rate or
                (self.attack_fraction and self.attack != 'none'))


def _per_client_uniform(key: PRNGKey, client_ids: Array) -> Array:
  return jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))(
      client_ids)


def is_attacker(run_key: PRNGKey, client_ids: Array, fraction: float) -> Array:
  """[C] bool: the fixed attacker set, independent of the round."""
  key = jax.random.fold_in(run_key, _ATTACK_STREAM)
  return _per_client_uniform(key, client_ids) < fraction


def apply_faults(model: FaultModel, deltas: PyTree, weights: Array,
                 client_ids: Array, run_key: PRNGKey, round_key: PRNGKey
                 ) -> tuple[PyTree, Array, Metrics]:
  """Returns (deltas, weights, metrics) after dropout, corruption, attacks."""
  if model.attack not in ATTACKS:
    raise ValueError(f'attack must be one of {ATTACKS}, got {model.attack!r}')
  key = jax.random.fold_in(round_key, _FAULT_STREAM)
  drop_key, nan_key, noise_key = jax.random.split(key, 3)
  reporting = weights > 0
  dropped = reporting & (_per_client_uniform(drop_key, client_ids) <
                         model.dropout_rate)
  weights = jnp.where(dropped, 0.0, weights)
  broken = (weights > 0) & (_per_client_uniform(nan_key, client_ids) <
                            model.nonfinite_rate)
  attackers = (weights > 0) & is_attacker(run_key, client_ids,
                                          model.attack_fraction)
  if model.attack == 'none':
    attackers = jnp.zeros_like(attackers)

  def per_client(mask, x):
    return mask.reshape(mask.shape + (1,) * (x.ndim - 1))

  if model.attack == 'noise':
    squared = sum(jnp.sum(x.reshape(x.shape[0], -1)**2, axis=1)
                  for x in jax.tree.leaves(deltas))
    size = sum(x[0].size for x in jax.tree.leaves(deltas))
    scale = jnp.sqrt(squared / size)
    leaves, treedef = jax.tree.flatten(deltas)
    keys = jax.random.split(noise_key, len(leaves))
    noise = jax.tree.unflatten(treedef, [
        jax.random.normal(k, x.shape, x.dtype) *
        scale.reshape((-1,) + (1,) * (x.ndim - 1))
        for k, x in zip(keys, leaves)])
    deltas = jax.tree.map(
        lambda x, n: jnp.where(per_client(attackers, x), n, x), deltas, noise)
  elif model.attack != 'none':
    factor = -1.0 if model.attack == 'sign_flip' else model.attack_scale
    deltas = jax.tree.map(
        lambda x: jnp.where(per_client(attackers, x), factor * x, x), deltas)
  deltas = jax.tree.map(
      lambda x: jnp.where(per_client(broken, x), jnp.nan, x), deltas)
  metrics = {'faults/dropped': dropped.sum(),
             'faults/attackers': attackers.sum()}
  return deltas, weights, metrics


def exclude_nonfinite(deltas: PyTree, weights: Array,
                      zero_deltas: bool = True
                      ) -> tuple[PyTree, Array, Array]:
  """Zero weight and zero delta for clients whose delta is not finite.

  With `zero_deltas=False` the deltas come back as they are and the caller
  must zero the rows of weight 0 itself (the sparse upload does so while it
  flattens them, saving a pass over every [C, ...] leaf).

  Returns (deltas, weights, [C] bool excluded).
  """
  finite = jnp.ones(weights.shape, bool)
  block = blockwise.default_block()
  for x in jax.tree.leaves(deltas):
    finite &= blockwise.reduce(
        lambda piece: blockwise.count_true(~jnp.isfinite(piece)) == 0,
        jnp.logical_and, x.reshape(x.shape[0], -1), block)
  excluded = (weights > 0) & ~finite
  if zero_deltas:
    deltas = jax.tree.map(
        lambda x: jnp.where(finite.reshape((-1,) + (1,) * (x.ndim - 1)), x,
                            0.0), deltas)
  return deltas, jnp.where(finite, weights, 0.0), excluded
