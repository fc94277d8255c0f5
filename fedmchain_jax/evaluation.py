"""Held-out evaluation of the global model: fused and per-modality accuracy."""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fedmchain_jax.data.federated import TestData
from fedmchain_jax.types import Metrics, Params


def batch_test_data(test: TestData, batch_size: int,
                    size: int | None = None) -> dict:
  """Pads the test split to whole batches: leaves [ceil(T / B), B, ...].

  `size` (>= T) pads to ceil(size / B) batches instead, so that splits of
  different sizes (validation splits of several seeds) share one shape.
  Returns a dict with 'features', 'label' and 'mask' (False on padding), as
  NumPy arrays, ready for `jax.device_put` and `evaluate`.
  """
  total = test.labels.shape[0]
  num_batches = -(-max(total, size or 0) // batch_size)
  padded = num_batches * batch_size

  def pad(x):
    x = np.asarray(x)
    widths = [(0, padded - total)] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, widths).reshape((num_batches, batch_size) + x.shape[1:])

  return {
      'features': {m: pad(x) for m, x in test.features.items()},
      'label': pad(test.labels),
      'mask': pad(np.ones(total, bool)),
  }


def make_evaluate(apply_fn: Callable) -> Callable[[Params, dict], Metrics]:
  """Builds `evaluate(params, batches) -> metrics` for batched test data.

  Args:
    apply_fn: `apply_fn(params, features, modality_mask) -> (fused,
      unimodal)`; evaluation uses every modality.

  Returns:
    A traceable function; its metrics are 'eval/loss', 'eval/accuracy'
    (fused), 'eval/accuracy/<modality>' (that modality's head alone),
    'eval/f1' (the fused prediction's macro-F1: the mean over the classes
    that occur as label or prediction of 2 TP / (predicted + actual), as
    the multimodal-FL benchmarks report it) and 'eval/examples' (how many
    were evaluated: the split's size).
    Batches are visited with `lax.map`, so memory is one batch's worth.
  """

  def evaluate(params, batches):
    def one_batch(batch):
      fused, unimodal = apply_fn(params, batch['features'], None)
      label, mask = batch['label'], batch['mask']
      correct = {'eval/accuracy': fused.argmax(-1) == label}
      for m, z in unimodal.items():
        correct[f'eval/accuracy/{m}'] = z.argmax(-1) == label
      sums = {k: jnp.sum(v & mask) for k, v in correct.items()}
      loss = optax.softmax_cross_entropy_with_integer_labels(fused, label)
      sums['eval/loss'] = jnp.sum(jnp.where(mask, loss, 0.0))
      sums['count'] = mask.sum()
      classes = jnp.arange(fused.shape[-1])
      predicted = (fused.argmax(-1)[:, None] == classes) & mask[:, None]
      actual = (label[:, None] == classes) & mask[:, None]
      sums['f1/true_positives'] = jnp.sum(predicted & actual, 0)
      sums['f1/predicted_plus_actual'] = (jnp.sum(predicted, 0) +
                                          jnp.sum(actual, 0))
      return sums

    sums = jax.tree.map(lambda x: x.sum(0),
                        jax.lax.map(one_batch, batches))
    count = sums.pop('count')
    true_positives = sums.pop('f1/true_positives')
    occurring = sums.pop('f1/predicted_plus_actual')
    f1 = 2 * true_positives / jnp.maximum(occurring, 1)
    macro_f1 = jnp.sum(f1) / jnp.maximum(jnp.sum(occurring > 0), 1)
    metrics = {k: v.astype(jnp.float32) / jnp.maximum(count, 1)
               for k, v in sums.items()}
    metrics['eval/f1'] = macro_f1.astype(jnp.float32)
    metrics['eval/examples'] = count.astype(jnp.float32)
    return metrics

  return evaluate
