"""Client updates: what one client does with the global model in a round.

A client update is a factory's `ClientUpdate`, a NamedTuple holding

  update(params, batches, modality_present, key, round_index)
      -> (trained params, metrics)

and `num_steps`, the S batches it reads a round. `batches` is a
`data.DrawnBatches` (or leaves [S, B, ...]); read step s with
`step_batch(batches, s)`, never by indexing, so the round gathers each
step's examples only when the step runs. `modality_present` is
{modality: bool scalar} for this client. The round vmaps `update` over the
cohort and takes the upload's delta as trained - params.

Factories: `joint` (FedAvg's local work on one loss; FedProx through
`prox_mu`), `chain` (FedMChain's chain of modality phases with its
error-compensated `Regularizer`), `ogm_ge` (joint training with OGM-GE
gradient modulation). `apply_fn(params, features, modality_mask, only)` is
the model (see `models.LateFusionClassifier`).
"""

import inspect
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from fedmchain_jax import determinism
from fedmchain_jax import losses
from fedmchain_jax import models
from fedmchain_jax.data import federated
from fedmchain_jax.types import Batch, LossFn, Metrics, Params, PRNGKey

REGULARIZERS = ('boost', 'reweight')


class ClientUpdate(NamedTuple):
  """A client's local work in a round.

  Attributes:
    update: `update(params, batches, present, key, round_index) -> (trained
      params, metrics)`, one client (the round vmaps it); metrics are
      scalars.
    num_steps: S, the batches `update` reads per round.
    lazy_batches: True when `update` reads its batches only through
      `step_batch` and `num_steps_of`: the round then passes a
      `data.DrawnBatches` that gathers each step's examples when read, so
      the cohort's [C, S, B, ...] batches are never held whole. False: each
      client gets a dict of [S, B, ...] leaves.
  """
  update: Callable[..., tuple[Params, Metrics]]
  num_steps: int
  lazy_batches: bool = True


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

  Under the cohort's vmap the starting params may be shared by all clients
  (see `placement`); inside a scan they would be broadcast to [C, ...] and
  copied into the loop, while the first step's output is per client
  already (benchmarks/RESULTS.md). Step s reads `step_batch(batches,
  offset + s)` by index, so no sliced copy of the batches is made (and
  `data.DrawnBatches` gathers it only then).
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
                params: Params, batches: Batch, key: PRNGKey
                ) -> tuple[Params, Metrics]:
  """Runs S optimizer steps on one client.

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)` on leaves [B, ...].
    optimizer: the client optax optimizer; its state starts fresh each round.
    params: the starting (global) params.
    batches: leaves [S, B, ...] or a `data.DrawnBatches`; step s uses
      `step_batch(batches, s)`.
    key: the client's key for this round; step s uses `fold_in(key, s)`.

  Returns:
    (trained params, metrics), each metric the mean over the steps; vmap
    this function over a leading clients axis.
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
  return trained, jax.tree.map(
      lambda m: determinism.fixed_order_sum(m) / num_steps, metrics)

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


def _phase(apply_fn, modalities, optimizer, regularizer, order, j,
           steps_per_phase, params, batches, present):
  """Phase j of a chain: `steps_per_phase` steps on modality order[j]'s
  blocks. Returns (params, the phase's metrics averaged over its steps)."""
  m = order[j]
  blocks = [models.encoder_name(m), models.head_name(m)]
  grad_fn = jax.grad(phase_loss(apply_fn, m, regularizer), has_aux=True)
  prev = tuple(order[:j])
  other = tuple(n for n in modalities if n != m)
  context = {
      'has_prev': jnp.any(jnp.array([present[p] for p in prev] or [False])),
      'has_other': jnp.any(jnp.array([present[o] for o in other] or [False]))}

  def step(carry, inputs):
    trainable, opt_state = carry
    _, batch = inputs
    frozen = {k: v for k, v in params.items() if k not in blocks}
    full = {**frozen, **trainable}
    if regularizer.kind == 'boost':
      extra = {'prev': jax.lax.stop_gradient(
          apply_fn(full, batch['features'], present, prev)[0])}
    else:
      extra = {'other': jax.lax.stop_gradient(
          apply_fn(full, batch['features'], present, other)[0])}
    grads, metrics = grad_fn(trainable, frozen, batch, {**context, **extra})
    updates, new_state = optimizer.update(grads, opt_state, trainable)
    stepped = optax.apply_updates(trainable, updates)
    # A client that lacks m keeps its blocks: a mask, not a branch.
    trainable = jax.tree.map(lambda a, b: jnp.where(present[m], a, b),
                             stepped, trainable)
    return (trainable, new_state), metrics

  trainable = _select(params, blocks)
  (trainable, _), metrics = scan_steps(
      step, (trainable, optimizer.init(trainable)), batches, steps_per_phase,
      offset=j * steps_per_phase)
  return {**params, **trainable}, jax.tree.map(
      lambda x: determinism.fixed_order_sum(x) / steps_per_phase, metrics)


def check_apply_fn(apply_fn: Callable, user: str) -> None:
  """Raises TypeError, in one line, unless `apply_fn` can be called as
  `apply_fn(params, features, modality_mask, only)`."""
  try:
    signature = inspect.signature(apply_fn)
  except (TypeError, ValueError):
    return  # Not introspectable (a C function): left to the call.
  try:
    signature.bind(None, None, None, None)
  except TypeError:
    raise TypeError(
        f'{user} calls apply_fn(params, features, modality_mask, only) -> '
        f'(fused logits, {{modality: logits}}); the apply_fn given takes '
        f'{signature}') from None


def chain(apply_fn: Callable, modalities: Sequence[str],
          optimizer: optax.GradientTransformation,
          steps_per_phase: int,
          orders: Sequence[Sequence[str]],
          regularizer: Regularizer = Regularizer()) -> ClientUpdate:
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
    A `ClientUpdate` with S = M S_p. Metrics: 'loss' and 'accuracy' (the
    unimodal CE/accuracy averaged over the phases the client ran) and
    'loss/<m>' per modality.

  Example:
    >>> update = chain(apply_fn, ('image', 'audio'), optax.sgd(0.05), 5,
    ...                [('image', 'audio'), ('audio', 'image')])
    >>> trained, metrics = update.update(params, batches, present, key, 0)
  """
  check_apply_fn(apply_fn, 'chain')
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
      params, phase_metrics[m] = _phase(
          apply_fn, modalities, optimizer, regularizer, order, j,
          steps_per_phase, params, batches, present)
    count = jnp.maximum(
        jnp.array([present[m] for m in modalities], jnp.float32).sum(), 1.0)
    metrics = {
        name: sum(present[m] * phase_metrics[m][name] for m in modalities) /
        count for name in ('loss', 'accuracy')
    }
    metrics.update({f'loss/{m}': phase_metrics[m]['loss'] for m in modalities})
    return params, metrics

  def update(params, batches, present, key, round_index):
    branches = [
        lambda p, b, pr, k, order=tuple(order): run_chain(order, p, b, pr, k)
        for order in orders
    ]
    if len(branches) == 1:
      return branches[0](params, batches, present, key)
    return jax.lax.switch(round_index % len(branches), branches, params,
                          batches, present, key)

  return ClientUpdate(update, len(modalities) * steps_per_phase)


def proximal(loss_fn: LossFn, mu, anchor: Params) -> LossFn:
  """FedProx's loss: loss_fn(v) + (mu / 2) ||v - anchor||^2."""

  def local_loss(current, batch, step_key):
    loss, metrics = loss_fn(current, batch, step_key)
    distance = sum(jnp.sum((p - g)**2) for p, g in zip(
        jax.tree.leaves(current), jax.tree.leaves(anchor)))
    return loss + 0.5 * mu * distance, metrics

  return local_loss


def joint(loss_fn: LossFn, optimizer: optax.GradientTransformation,
          num_steps: int, prox_mu: float = 0.0) -> ClientUpdate:
  """Joint training of all blocks on `loss_fn` (FedAvg's local work).

  With prox_mu > 0 the loss gains FedProx's (prox_mu / 2) ||v - w||^2 to the
  params w the client started from (`proximal`).

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)`.
    optimizer: client optax optimizer, fresh each round.
    num_steps: S.
    prox_mu: FedProx's proximal weight (0: none; may be traced).

  Returns:
    A `ClientUpdate`.
  """

  def update(params, batches, present, key, round_index):
    del present, round_index  # The batches carry the modality mask.
    local_loss = (loss_fn if is_zero(prox_mu) else
                  proximal(loss_fn, prox_mu, params))
    return local_train(local_loss, optimizer, params, batches, key)

  return ClientUpdate(update, num_steps)


def _ogm_coefficients(modalities, alpha, scores, present):
  """{m: (dominant, 1 - tanh(alpha r_m))} of OGM-GE (see `ogm_ge`)."""
  coefficients = {}
  for m in modalities:
    others = [n for n in modalities if n != m]
    other_sum = sum(jnp.where(present[n], scores[n], 0.0) for n in others)
    other_count = sum(present[n].astype(jnp.float32) for n in others)
    ratio = scores[m] / jnp.maximum(other_sum / jnp.maximum(other_count, 1),
                                    1e-12)
    dominant = present[m] & (other_count > 0) & (ratio > 1)
    coefficients[m] = (dominant, 1.0 - jnp.tanh(alpha * ratio))
  return coefficients


def _ogm_loss(apply_fn):
  """Fused CE with each modality's confidence s_m as auxiliary output."""

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

  return loss_fn


def ogm_ge(apply_fn: Callable, modalities: Sequence[str],
           optimizer: optax.GradientTransformation, num_steps: int,
           alpha: float, noise: bool = True) -> ClientUpdate:
  """Joint training with OGM-GE gradient modulation (Peng et al., CVPR 2022).

  Each step measures every present modality's confidence on the batch,
  s_m = sum_i softmax(z_m)_{i, y_i}, and its ratio to the mean of the other
  present modalities' confidences, r_m = s_m / mean_{n != m} s_n. The encoder
  of a dominant modality (r_m > 1) has its gradient scaled by
  1 - tanh(alpha * r_m) and, with `noise`, Gaussian noise added with each
  gradient tensor's standard deviation (generalization enhancement).

  Returns:
    A `ClientUpdate` of `num_steps` steps; metrics add
    'ogm/coefficient/<m>'.
  """
  check_apply_fn(apply_fn, 'ogm_ge')
  grad_fn = jax.grad(_ogm_loss(apply_fn), has_aux=True)

  def step(carry, inputs):
    params, opt_state, key = carry
    index, batch = inputs
    grads, (metrics, scores) = grad_fn(params, batch)
    coefficients = _ogm_coefficients(modalities, alpha, scores,
                                     batch['modality_mask'])
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

  def update(params, batches, present, key, round_index):
    del present, round_index
    steps = num_steps_of(batches)
    (trained, _, _), metrics = scan_steps(
        step, (params, optimizer.init(params), key), batches, steps)
    return trained, jax.tree.map(
        lambda m: determinism.fixed_order_sum(m) / steps, metrics)

  return ClientUpdate(update, num_steps)
