"""Classification losses over padded batches."""

import jax.numpy as jnp
import optax

from fedmchain_jax.types import Array, LossFn


def ordered_sum(values: Array) -> Array:
  """Sum over the last axis, left to right.

  XLA:CPU reduces a short vector in an order that depends on how many of
  them are batched together (a vmapped client alone, or 2 per device, sums
  its [B] losses differently from a batch of 8), so a client's reported loss
  would depend on the cohort's layout. Spelled out as adds, the order is
  fixed; the axis is a batch or step count, so the unrolled graph stays
  small.
  """
  total = values[..., 0]
  for i in range(1, values.shape[-1]):
    total = total + values[..., i]
  return total


def masked_mean(values: Array, mask: Array) -> Array:
  """Mean of `values` over the True entries of `mask` (0 when none are)."""
  mask = mask.astype(values.dtype)
  return ordered_sum(values * mask) / jnp.maximum(ordered_sum(mask), 1.0)


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
