"""Validation of a run's config before anything is built or compiled.

Every check raises `ConfigError`, whose message is one line naming the
field, the value given and what is allowed; the launcher prints it and
exits with status 1. The allowed names are the registry's
(`experiments/registry.py`) and the library's own tuples; a dataset's or
aggregator's own fields are checked by its registry entry.
"""

import numbers

import ml_collections

from fedmchain_jax import client
from fedmchain_jax import faults
from fedmchain_jax import models as fmc_models
from fedmchain_jax import placement
from fedmchain_jax import ssca
from fedmchain_jax import algorithms
from fedmchain_jax.data import federated
from experiments import fields
from experiments import registry

ConfigError = fields.ConfigError


def check_data(config, modalities, num_clients: int) -> None:
  """Checks the fields that depend on the loaded data."""
  if config.rounds.cohort_size > num_clients:
    raise ConfigError('rounds.cohort_size', config.rounds.cohort_size,
                      f'must be <= the number of clients the data has '
                      f'({num_clients})')
  order = tuple(config.fedmchain.chain_order)
  if order and sorted(order) != sorted(modalities):
    raise ConfigError(
        'fedmchain.chain_order', order,
        f'must name each data modality once ({", ".join(sorted(modalities))})'
        ' or be ()')


def _check_data_fields(config) -> None:
  per_client = fields.integer(config, 'data.examples_per_client')
  fields.integer(config, 'data.num_clients')
  fields.integer(config, 'data.num_test')
  fields.integer(config, 'data.num_classes', low=2)
  fields.real(config, 'data.dirichlet_alpha', low=0, low_open=True)
  fields.real(config, 'data.missing_modality_rate', 0, 1, high_open=True)
  fields.integer(config, 'data.min_examples', low=1, high=per_client)
  fields.real(config, 'data.validation_fraction', 0, 1, high_open=True)


def _check_model_and_rounds(config) -> None:
  hidden = fields.get(config, 'model.hidden')
  if not isinstance(hidden, (tuple, list)) or not all(
      isinstance(w, numbers.Integral) and w >= 1 for w in hidden):
    raise ConfigError('model.hidden', hidden,
                      'must be a tuple of integers >= 1 (layer widths)')
  fields.choice(config, 'model.encoder', tuple(fmc_models.ENCODERS))
  fields.choice(config, 'model.dtype', tuple(fmc_models.DTYPES))
  for field in ('num_rounds', 'cohort_size', 'eval_every',
                'checkpoint_every', 'rounds_per_call'):
    fields.integer(config, f'rounds.{field}')
  chunk = fields.get(config, 'rounds.chunk_size')
  if (not isinstance(chunk, numbers.Integral) or isinstance(chunk, bool)
      or chunk < -1):
    raise ConfigError('rounds.chunk_size', chunk,
                      'must be an integer >= 0 (0: whole cohort) or -1 '
                      '(automatic)')
  fields.boolean(config, 'rounds.shard_clients')
  fields.choice(config, 'rounds.mesh_reduction', placement.MESH_REDUCTIONS)
  fields.choice(config, 'rounds.agreement_dtype', ssca.AGREEMENT_DTYPES)
  fields.integer(config, 'rounds.agreement_row_groups', low=0)
  fields.boolean(config, 'rounds.agreement_materialize')
  fields.boolean(config, 'rounds.layout_independent_bits')


def _check_training(config) -> None:
  for side in ('client', 'server'):
    fields.choice(config, f'{side}.optimizer', tuple(registry.OPTIMIZERS))
    fields.real(config, f'{side}.lr', low=0, low_open=True)
    fields.real(config, f'{side}.momentum', 0, 1, high_open=True)
  for field in ('num_local_steps', 'steps_per_phase', 'batch_size'):
    fields.integer(config, f'client.{field}')
  fields.real(config, 'fedprox.mu', low=0)
  fields.real(config, 'ogm.alpha', low=0, low_open=True)
  fields.boolean(config, 'ogm.noise')


def _check_fedmchain(config) -> None:
  order = fields.get(config, 'fedmchain.chain_order')
  if not isinstance(order, (tuple, list)) or not all(
      isinstance(m, str) for m in order):
    raise ConfigError('fedmchain.chain_order', order,
                      'must be a tuple of modality names, or () for all in '
                      'sorted order')
  fields.choice(config, 'fedmchain.chain_rule', algorithms.CHAIN_RULES)
  fields.choice(config, 'fedmchain.regularizer', client.REGULARIZERS)
  fields.real(config, 'fedmchain.reg_lambda', low=0)
  fields.real(config, 'fedmchain.reg_w1')
  fields.real(config, 'fedmchain.reg_w2')
  fields.real(config, 'fedmchain.rho', 0, 1, low_open=True)
  fields.boolean(config, 'fedmchain.error_feedback')
  fields.real(config, 'fedmchain.tau', -1, 1, high_open=True)
  fields.integer(config, 'fedmchain.max_groups')
  fields.choice(config, 'fedmchain.combine', ssca.COMBINES)
  fields.choice(config, 'fedmchain.aggregator', tuple(registry.AGGREGATORS))
  fields.choice(config, 'fedmchain.normalize', ssca.NORMALIZE)


def _check_faults_and_eval(config) -> None:
  fields.real(config, 'faults.dropout_rate', 0, 1, high_open=True)
  fields.real(config, 'faults.nonfinite_rate', 0, 1)
  fields.choice(config, 'faults.attack', faults.ATTACKS)
  fields.real(config, 'faults.attack_fraction', 0, 1)
  fields.real(config, 'faults.attack_scale')
  fields.integer(config, 'eval.batch_size')
  fields.boolean(config, 'eval.aggregation_metrics')
  split = fields.choice(config, 'eval.split', federated.HELD_OUT)
  if split == 'validation' and not config.data.validation_fraction > 0:
    raise ConfigError('eval.split', split,
                      'needs data.validation_fraction > 0 (the share of each '
                      "client's examples held out), e.g. 0.1")


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises `ConfigError` on the first invalid field."""
  fields.integer(config, 'seed', low=0)
  fields.choice(config, 'algorithm', tuple(registry.ALGORITHMS))
  name = fields.choice(config, 'data.name', tuple(registry.DATASETS))
  _check_data_fields(config)
  _check_model_and_rounds(config)
  registry.DATASETS[name].check(config)
  _check_training(config)
  _check_fedmchain(config)
  _check_faults_and_eval(config)
