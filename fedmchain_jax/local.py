"""Local updates for multimodal clients: FedMChain's chain of modality phases,
joint training, and joint training with OGM-GE gradient modulation.

Every local update has the signature

  local_update(params, batches, modality_present, key, round_index)
      -> (trained params, metrics)

with `batches` leaves [S, B, ...] (S = all local steps of the round) or a
`data.DrawnBatches` that gathers step s when read (read step s with
`client.step_batch(batches, s)`, S with `client.num_steps_of(batches)`),
`modality_present` {modality: bool scalar} for this client, and it is vmapped
over the cohort. `apply_fn(params, features, modality_mask, only)` is the
model (see `models.LateFusionClassifier`).
"""

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax import client
from fedmchain_jax import determinism
from fedmchain_jax import losses
from fedmchain_jax import models
from fedmchain_jax.types import Array, Metrics, Params

REGULARIZERS = ('boost', 'reweight')


class Regularizer(NamedTuple):
  """The error-compensated regularizer of phase m (docs/algorithm.md).

  With `prev` the detached summed logits of the present modalities trained
  earlier in the chain and `other` those of every other present modality:

    boost:    loss_m = CE(y, z_m) + lam * CE(y, prev + z_m)
    reweight: loss_m = CE(y, z_m) + lam * mean_i (w1 - w2 q_iy) CE_i(y, z_m),
              q = softmax(other)

  The extra term is dropped for a client with no `prev` (boost) or no
  `other` (reweight) modality; lam = 0 switches it off.
  """
  kind: str = 'boost'
  lam: float = 1.0
  w1: float = 1.0
  w2: float = 1.0


def is_zero(value) -> bool:
  """True for a Python number equal to 0; False for anything traced.

  Hyper-parameters may be tracers (a sweep vmaps over them): a term is only
  dropped at trace time when its weight is a literal 0.
  """
  return isinstance(value, (int, float)) and value == 0


def _select(tree: dict, keys: Sequence[str]) -> dict:
  return {k: tree[k] for k in keys if k in tree}


def phase_loss(apply_fn, modality: str, regularizer: Regularizer):
  """The loss of the phase that trains `modality` (see `Regularizer`).

  Returns:
    `loss_fn(trainable, frozen, batch, context) -> (loss, metrics)`: the model
    params are `{**frozen, **trainable}`; `context` holds 'prev' (boost) or
    'other' (reweight) detached logits [B, K] with 'has_prev'/'has_other'.
  """

  def loss_fn(trainable, frozen, batch, context):
    params = {**frozen, **trainable}
    _, unimodal = apply_fn(params, batch['features'], None, (modality,))
    logits = unimodal[modality]
    label, mask = batch['label'], batch['mask']
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, label)
    base = losses.masked_mean(per_example, mask)
    if is_zero(regularizer.lam):
      extra = jnp.zeros(())
    elif regularizer.kind == 'boost':
      boosted = losses.masked_cross_entropy(context['prev'] + logits, label,
                                            mask)
      extra = jnp.where(context['has_prev'], boosted, 0.0)
    else:
      q = jax.nn.softmax(context['other'])
      q_y = jnp.take_along_axis(q, label[:, None], axis=1)[:, 0]
      weight = jnp.where(context['has_other'],
                         regularizer.w1 - regularizer.w2 * q_y, 0.0)
      extra = losses.masked_mean(weight * per_example, mask)
    loss = base + regularizer.lam * extra
    accuracy = losses.masked_accuracy(logits, label, mask)
    return loss, {'loss': base, 'accuracy': accuracy}

  return loss_fn


def chain_update(apply_fn: Callable, modalities: Sequence[str],
                 optimizer: optax.GradientTransformation,
                 steps_per_phase: int,
                 orders: Sequence[Sequence[str]],
                 regularizer: Regularizer = Regularizer()) -> Callable:
  """FedMChain's local update: one phase per modality, in a chain.

  Phase j trains modality m = order[j] for `steps_per_phase` steps on the
  batches [j S_p, (j + 1) S_p): only `encoder_<m>` and `head_<m>` move (the
  loss is built from z_m alone and differentiated w.r.t. those blocks), with
  a fresh optimizer state each phase. A client that lacks m skips the phase:
  its blocks keep their values (a mask, not a branch).

  Args:
    apply_fn: the model.
    modalities: all modality names.
    optimizer: client optax optimizer.
    steps_per_phase: S_p; the round uses S = M S_p batches.
    orders: the chain orders; round r uses orders[r % len(orders)] (one order
      = a fixed chain; M rotations = the order rotates every round).
    regularizer: the error-compensated regularizer.

  Returns:
    A local update (see the module docstring). Metrics: 'loss' and
    'accuracy' (the unimodal CE/accuracy averaged over the phases the client
    ran) and 'loss/<m>' per modality.
  """
  if regularizer.kind not in REGULARIZERS:
    raise ValueError(f'regularizer must be one of {REGULARIZERS}, '
                     f'got {regularizer.kind!r}')
  for order in orders:
    if sorted(order) != sorted(modalities):
      raise ValueError(f'a chain order must name every modality once: '
                       f'{tuple(order)} vs {tuple(modalities)}')

  def run_chain(order, params, batches, present, key):
    del key  # The model is deterministic: the steps draw no randomness.
    phase_metrics = {}
    for j, m in enumerate(order):
      blocks = [models.encoder_name(m), models.head_name(m)]
      grad_fn = jax.grad(phase_loss(apply_fn, m, regularizer), has_aux=True)
      prev = tuple(order[:j])
      other = tuple(n for n in modalities if n != m)
      has_prev = jnp.any(jnp.array([present[p] for p in prev] or [False]))
      has_other = jnp.any(jnp.array([present[o] for o in other] or [False]))

      def step(carry, inputs, m=m, blocks=blocks, grad_fn=grad_fn, prev=prev,
               other=other, has_prev=has_prev, has_other=has_other):
        trainable, opt_state = carry
        index, batch = inputs
        frozen = {k: v for k, v in params.items() if k not in blocks}
        full = {**frozen, **trainable}
        context = {'has_prev': has_prev, 'has_other': has_other}
        if regularizer.kind == 'boost':
          context['prev'] = jax.lax.stop_gradient(
              apply_fn(full, batch['features'], present, prev)[0])
        else:
          context['other'] = jax.lax.stop_gradient(
              apply_fn(full, batch['features'], present, other)[0])
        grads, metrics = grad_fn(trainable, frozen, batch, context)
        updates, new_state = optimizer.update(grads, opt_state, trainable)
        stepped = optax.apply_updates(trainable, updates)
        keep = present[m]
        trainable = jax.tree.map(lambda a, b: jnp.where(keep, a, b), stepped,
                                 trainable)
        return (trainable, new_state), metrics

      trainable = _select(params, blocks)
      (trainable, _), metrics = client.scan_steps(
          step, (trainable, optimizer.init(trainable)), batches,
          steps_per_phase, offset=j * steps_per_phase)
      params = {**params, **trainable}
      phase_metrics[m] = jax.tree.map(
          lambda x: determinism.fixed_order_sum(x) / steps_per_phase,
          metrics)
    ran = jnp.array([present[m] for m in modalities], jnp.float32)
    count = jnp.maximum(ran.sum(), 1.0)
    metrics = {
        name: sum(present[m] * phase_metrics[m][name] for m in modalities) /
        count for name in ('loss', 'accuracy')
    }
    metrics.update({f'loss/{m}': phase_metrics[m]['loss'] for m in modalities})
    return params, metrics

  def local_update(params, batches, present, key, round_index):
    branches = [
        lambda p, b, pr, k, order=tuple(order): run_chain(order, p, b, pr, k)
        for order in orders
    ]
    if len(branches) == 1:
      return branches[0](params, batches, present, key)
    return jax.lax.switch(round_index % len(branches), branches, params,
                          batches, present, key)

  return local_update


def joint_update(loss_fn, optimizer: optax.GradientTransformation,
                 prox_mu: float = 0.0) -> Callable:
  """Joint training of all blocks on `loss_fn` (FedAvg's local work).

  With prox_mu > 0 the loss gains FedProx's (prox_mu / 2) ||v - w||^2 to the
  params w the client started from.
  """

  def local_update(params, batches, present, key, round_index):
    del present, round_index  # The batches carry the modality mask.
    if not is_zero(prox_mu):
      def local_loss(current, batch, step_key):
        loss, metrics = loss_fn(current, batch, step_key)
        distance = sum(jnp.sum((p - g)**2) for p, g in zip(
            jax.tree.leaves(current), jax.tree.leaves(params)))
        return loss + 0.5 * prox_mu * distance, metrics
    else:
      local_loss = loss_fn
    output = client.local_train(local_loss, optimizer, params, batches, key)
    trained = jax.tree.map(jnp.add, params, output.delta)
    return trained, output.metrics

  return local_update


def ogm_ge_update(apply_fn: Callable, modalities: Sequence[str],
                  optimizer: optax.GradientTransformation, alpha: float,
                  noise: bool = True) -> Callable:
  """Joint training with OGM-GE gradient modulation (Peng et al., CVPR 2022).

  Each step measures every present modality's confidence on the batch,
  s_m = sum_i softmax(z_m)_{i, y_i}, and its ratio to the mean of the other
  present modalities' confidences, r_m = s_m / mean_{n != m} s_n. The encoder
  of a dominant modality (r_m > 1) has its gradient scaled by
  1 - tanh(alpha * r_m) and, with `noise`, Gaussian noise added with each
  gradient tensor's standard deviation (generalization enhancement).
  """

  def loss_fn(params, batch):
    fused, unimodal = apply_fn(params, batch['features'],
                               batch['modality_mask'])
    label, mask = batch['label'], batch['mask']
    loss = losses.masked_cross_entropy(fused, label, mask)
    scores = {
        m: jnp.sum(jnp.where(mask, jnp.take_along_axis(
            jax.nn.softmax(z), label[:, None], axis=1)[:, 0], 0.0))
        for m, z in unimodal.items()
    }
    return loss, ({'loss': loss,
                   'accuracy': losses.masked_accuracy(fused, label, mask)},
                  scores)

  grad_fn = jax.grad(loss_fn, has_aux=True)

  def step(carry, inputs):
    params, opt_state, key = carry
    index, batch = inputs
    grads, (metrics, scores) = grad_fn(params, batch)
    present = batch['modality_mask']
    coefficients = {}
    for m in modalities:
      others = [n for n in modalities if n != m]
      other_sum = sum(jnp.where(present[n], scores[n], 0.0) for n in others)
      other_count = sum(present[n].astype(jnp.float32) for n in others)
      ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, 1),
                                      1e-12)
      dominant = present[m] & (other_count > 0) & (ratio > 1)
      coefficients[m] = (dominant, 1.0 - jnp.tanh(alpha * ratio))
    step_key = jax.random.fold_in(key, index)
    for i, m in enumerate(modalities):
      name = models.encoder_name(m)
      if name not in grads:
        continue
      dominant, coefficient = coefficients[m]
      leaves, treedef = jax.tree.flatten(grads[name])
      keys = jax.random.split(jax.random.fold_in(step_key, i), len(leaves))
      modulated = []
      for leaf, leaf_key in zip(leaves, keys):
        new = leaf * coefficient
        if noise:
          new = new + jnp.std(leaf) * jax.random.normal(leaf_key, leaf.shape)
        modulated.append(jnp.where(dominant, new, leaf))
      grads = {**grads, name: jax.tree.unflatten(treedef, modulated)}
      metrics[f'ogm/coefficient/{m}'] = jnp.where(dominant, coefficient, 1.0)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state, key), metrics

  def local_update(params, batches, present, key, round_index):
    del present, round_index
    num_steps = client.num_steps_of(batches)
    (trained, _, _), metrics = client.scan_steps(
        step, (params, optimizer.init(params), key), batches, num_steps)
    return trained, jax.tree.map(
        lambda m: determinism.fixed_order_sum(m) / num_steps, metrics)

  return local_update
