"""Classification losses over padded batches."""

import jax.numpy as jnp
import optax

from fedmchain_jax import determinism
from fedmchain_jax.types import Array, LossFn


def masked_mean(values: Array, mask: Array) -> Array:
  """Mean of `values` over the True entries of `mask` (0 when none are)."""
  mask = mask.astype(values.dtype)
  # A fixed-order sum: a client's loss must not depend on how many clients
  # are vmapped beside it (fedmchain_jax.determinism).
  total = determinism.fixed_order_sum(values * mask, axis=-1)
  count = determinism.fixed_order_sum(mask, axis=-1)
  return total / jnp.maximum(count, 1.0)


def masked_cross_entropy(logits: Array, labels: Array, mask: Array) -> Array:
  """Mean softmax cross-entropy of logits [B, K] against labels [B] over mask."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return masked_mean(losses, mask)


def masked_accuracy(logits: Array, labels: Array, mask: Array) -> Array:
  return masked_mean((logits.argmax(-1) == labels).astype(jnp.float32), mask)


def fused_classification_loss(apply_fn) -> LossFn:
  """Cross-entropy of the fused logits of a multimodal model.

  Args:
    apply_fn: `apply_fn(params, features, modality_mask) -> (fused, unimodal)`,
      e.g. `lambda p, f, m: model.apply({'params': p}, f, m)`.

  Returns:
    `loss_fn(params, batch, key) -> (loss, {'loss', 'accuracy'})`.
  """

  def loss_fn(params, batch, key):
    del key  # The models here are deterministic.
    fused, _ = apply_fn(params, batch['features'], batch['modality_mask'])
    loss = masked_cross_entropy(fused, batch['label'], batch['mask'])
    accuracy = masked_accuracy(fused, batch['label'], batch['mask'])
    return loss, {'loss': loss, 'accuracy': accuracy}

  return loss_fn
