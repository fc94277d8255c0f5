r"""Centralized reference: each modality alone and both jointly, pooled data.

  python -m experiments.centralized --config=experiments/configs/av_digits_fedavg.py \
      [--epochs=5] [--json]

Trains the config's model on all clients' examples pooled, once per setting:
every single modality alone (`only=(m,)`) and all modalities jointly on the
fused loss, with Adam, and prints test accuracy (fused, and per modality head
for the joint model). Joint training whose weak head ends far below that
modality trained alone is modality competition.
"""

import json

from absl import app
from absl import flags
import jax
import numpy as np
import optax
from ml_collections import config_flags

import fedmchain_jax as fmc
from experiments import cli
from experiments import config_checks
from experiments import train as runner

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A config file.')
_EPOCHS = flags.DEFINE_integer('epochs', 5, 'Passes over the pooled data.',
                               lower_bound=1)
_LR = flags.DEFINE_float('lr', 1e-3, 'Adam learning rate (> 0).')
flags.register_validator('lr', lambda lr: 0 < lr < float('inf'),
                         message='--lr must be a finite number > 0')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch size.', lower_bound=1)
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON object.')
flags.mark_flags_as_required(['config'])


def pooled(data: fmc.data.FederatedData, modalities):
  """Every real example, with its client's modality mask, as flat arrays."""
  mask = np.asarray(data.example_mask)
  features = {m: np.asarray(data.features[m])[mask] for m in modalities}
  present = {m: np.broadcast_to(np.asarray(data.modality_mask[m])[:, None],
                                mask.shape)[mask] for m in modalities}
  return features, np.asarray(data.labels)[mask], present


def train_centralized(model, params, features, labels, present, only, epochs,
                      lr, batch_size, seed=0):
  """Adam on the fused CE of the modalities in `only`; returns params."""
  optimizer = optax.adam(lr)

  @jax.jit
  def step(params, opt_state, batch):
    def loss_fn(p):
      fused, _ = model.apply({'params': p}, batch['features'],
                             batch['present'], only)
      return optax.softmax_cross_entropy_with_integer_labels(
          fused, batch['label']).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = optimizer.init(params)
  rng = np.random.default_rng(seed)
  count = labels.shape[0]
  for _ in range(epochs):
    order = rng.permutation(count)
    for start in range(0, count - batch_size + 1, batch_size):
      index = order[start:start + batch_size]
      batch = {'features': {m: x[index] for m, x in features.items()},
               'present': {m: v[index] for m, v in present.items()},
               'label': labels[index]}
      params, opt_state = step(params, opt_state, batch)
  return params


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    config_checks.validate(config)
  except config_checks.ConfigError as e:
    raise SystemExit(f'error: {e}') from None
  train_np, test_np, num_classes = runner.build_data(config)
  modalities = sorted(train_np.features)
  model = runner.build_model(config, modalities, num_classes)
  features, labels, present = pooled(train_np, modalities)
  evaluate = jax.jit(fmc.evaluation.make_evaluate(runner.apply_fn_of(model)))
  batches = fmc.evaluation.batch_test_data(test_np, config.eval.batch_size)
  init = runner.init_params(model, test_np, jax.random.key(config.seed))
  results = {}
  for only in [(m,) for m in modalities] + [tuple(modalities)]:
    params = train_centralized(model, init, features, labels, present, only,
                               _EPOCHS.value, _LR.value, _BATCH.value,
                               config.seed)
    metrics = jax.device_get(evaluate(params, batches))
    name = only[0] if len(only) == 1 else 'joint'
    if len(only) == 1:
      results[name] = float(metrics[f'eval/accuracy/{only[0]}'])
    else:
      results['joint'] = float(metrics['eval/accuracy'])
      for m in modalities:
        results[f'joint/{m}'] = float(metrics[f'eval/accuracy/{m}'])
  if _JSON.value:
    print(json.dumps(results, sort_keys=True))
  else:
    for name, value in results.items():
      print(f'{name:>14}: {value:.3f}')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser('config'))
