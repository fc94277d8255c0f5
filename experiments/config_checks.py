"""Validation of a run's config before anything is built or compiled.

Every check raises `ConfigError`, whose message is one line naming the
field, the value given and what is allowed; the launcher prints it and
exits with status 1.
"""

import math
import numbers

import ml_collections

from fedmchain_jax import models as fmc_models
from fedmchain_jax import placement
from fedmchain_jax.data import federated
from fedmchain_jax import ssca
from experiments import registry

ALGORITHMS = tuple(registry.ALGORITHMS)
DATASETS = tuple(registry.DATASETS)
OPTIMIZERS = tuple(registry.OPTIMIZERS)
MESH_REDUCTIONS = placement.MESH_REDUCTIONS
AGREEMENT_DTYPES = ssca.AGREEMENT_DTYPES
HELD_OUT = federated.HELD_OUT


class ConfigError(ValueError):

  def __init__(self, field: str, value, allowed: str):
    self.field, self.value, self.allowed = field, value, allowed
    super().__init__(f'config.{field}={value!r} is invalid: {allowed}')


def _get(config, field):
  node = config
  for part in field.split('.'):
    if part not in node:
      raise ConfigError(field, None, 'the field is missing from the config')
    node = node[part]
  return node


def _is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _integer(config, field, low=1, high=None):
  value = _get(config, field)
  if not isinstance(value, numbers.Integral) or isinstance(value, bool):
    raise ConfigError(field, value, 'must be an integer')
  if value < low or (high is not None and value > high):
    bound = f'>= {low}' if high is None else f'in [{low}, {high}]'
    raise ConfigError(field, value, f'must be an integer {bound}')
  return value


def _real(config, field, low=None, high=None, low_open=False, high_open=False):
  value = _get(config, field)
  if not _is_number(value):
    raise ConfigError(field, value, 'must be a finite number')
  too_low = low is not None and (value <= low if low_open else value < low)
  too_high = high is not None and (value >= high if high_open else value > high)
  if too_low or too_high:
    if high is None:
      allowed = f'must be {">" if low_open else ">="} {low}'
    elif low is None:
      allowed = f'must be {"<" if high_open else "<="} {high}'
    else:
      allowed = (f'must be in {"(" if low_open else "["}{low}, '
                 f'{high}{")" if high_open else "]"}')
    raise ConfigError(field, value, allowed)
  return value


def _choice(config, field, allowed):
  value = _get(config, field)
  if value not in allowed:
    raise ConfigError(field, value, f'must be one of {", ".join(allowed)}')
  return value


def _boolean(config, field):
  value = _get(config, field)
  if not isinstance(value, bool):
    raise ConfigError(field, value, 'must be True or False')
  return value


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


def _per_modality(config, field, count):
  value = _get(config, field)
  if not isinstance(value, (tuple, list)) or len(value) != count:
    raise ConfigError(
        field, value,
        f'must be a tuple with one entry per modality ({count} entries)')
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises `ConfigError` on the first invalid field."""
  _integer(config, 'seed', low=0)
  _choice(config, 'algorithm', ALGORITHMS)
  _choice(config, 'data.name', DATASETS)
  num_clients = _integer(config, 'data.num_clients')
  per_client = _integer(config, 'data.examples_per_client')
  _integer(config, 'data.num_test')
  _integer(config, 'data.num_classes', low=2)
  _real(config, 'data.dirichlet_alpha', low=0, low_open=True)
  _real(config, 'data.missing_modality_rate', 0, 1, high_open=True)
  _integer(config, 'data.min_examples', low=1, high=per_client)
  if config.data.name == 'synthetic':
    names = _get(config, 'data.synthetic.modalities')
    if (not isinstance(names, (tuple, list)) or not names
        or not all(isinstance(n, str) and n.isidentifier() for n in names)
        or len(set(names)) != len(names)):
      raise ConfigError('data.synthetic.modalities', names,
                        'must be a non-empty tuple of distinct identifiers')
    for field in ('dims', 'informativeness', 'noise_scale'):
      _per_modality(config, f'data.synthetic.{field}', len(names))
    for i in range(len(names)):
      dim = config.data.synthetic.dims[i]
      if not isinstance(dim, numbers.Integral) or dim < 1:
        raise ConfigError('data.synthetic.dims', config.data.synthetic.dims,
                          'every entry must be an integer >= 1')
      p = config.data.synthetic.informativeness[i]
      if not _is_number(p) or not 0 <= p <= 1:
        raise ConfigError('data.synthetic.informativeness',
                          config.data.synthetic.informativeness,
                          'every entry must be in [0, 1]')
      s = config.data.synthetic.noise_scale[i]
      if not _is_number(s) or s < 0:
        raise ConfigError('data.synthetic.noise_scale',
                          config.data.synthetic.noise_scale,
                          'every entry must be >= 0')
  if config.data.name in registry.RAW_DATASETS:
    for field in ('manual_dir', 'data_dir'):
      value = _get(config, f'data.{field}')
      if not isinstance(value, str) or not value:
        raise ConfigError(f'data.{field}', value, 'must be a directory path')
    _choice(config, 'data.partition', ('natural', 'dirichlet'))
    _integer(config, 'data.clients_per_speaker')
  if config.data.name == 'av_digits':
    _choice(config, 'data.source', ('manual', 'catalog'))
    _integer(config, 'data.pairing_seed', low=0)
    snr = _get(config, 'data.audio_snr_db')
    if snr is not None and not _is_number(snr):
      raise ConfigError('data.audio_snr_db', snr,
                        'must be a number (dB) or None for clean audio')
    _real(config, 'data.image_energy_removed', 0, 1, high_open=True)
  hidden = _get(config, 'model.hidden')
  if not isinstance(hidden, (tuple, list)) or not all(
      isinstance(w, numbers.Integral) and w >= 1 for w in hidden):
    raise ConfigError('model.hidden', hidden,
                      'must be a tuple of integers >= 1 (layer widths)')
  _choice(config, 'model.encoder', tuple(fmc_models.ENCODERS))
  _choice(config, 'model.dtype', tuple(fmc_models.DTYPES))
  _integer(config, 'rounds.num_rounds')
  cohort_size = _integer(config, 'rounds.cohort_size')
  if config.data.name == 'synthetic' and cohort_size > num_clients:
    raise ConfigError('rounds.cohort_size', cohort_size,
                      f'must be <= data.num_clients ({num_clients})')
  _integer(config, 'rounds.eval_every')
  _integer(config, 'rounds.checkpoint_every')
  chunk = _get(config, 'rounds.chunk_size')
  if (not isinstance(chunk, numbers.Integral) or isinstance(chunk, bool)
      or chunk < -1):
    raise ConfigError('rounds.chunk_size', chunk,
                      'must be an integer >= 0 (0: whole cohort) or -1 '
                      '(automatic)')
  _integer(config, 'rounds.rounds_per_call')
  _boolean(config, 'rounds.shard_clients')
  _choice(config, 'rounds.mesh_reduction', MESH_REDUCTIONS)
  _choice(config, 'rounds.agreement_dtype', AGREEMENT_DTYPES)
  _integer(config, 'rounds.agreement_row_groups', low=0)
  _boolean(config, 'rounds.agreement_materialize')
  _boolean(config, 'rounds.layout_independent_bits')
  for side in ('client', 'server'):
    _choice(config, f'{side}.optimizer', OPTIMIZERS)
    _real(config, f'{side}.lr', low=0, low_open=True)
    _real(config, f'{side}.momentum', 0, 1, high_open=True)
  _integer(config, 'client.num_local_steps')
  _integer(config, 'client.steps_per_phase')
  _integer(config, 'client.batch_size')
  _real(config, 'fedprox.mu', low=0)
  order = _get(config, 'fedmchain.chain_order')
  if not isinstance(order, (tuple, list)) or not all(
      isinstance(m, str) for m in order):
    raise ConfigError('fedmchain.chain_order', order,
                      'must be a tuple of modality names, or () for all in '
                      'sorted order')
  _choice(config, 'fedmchain.chain_rule', ('fixed', 'rotate'))
  _choice(config, 'fedmchain.regularizer', ('boost', 'reweight'))
  _real(config, 'fedmchain.reg_lambda', low=0)
  _real(config, 'fedmchain.reg_w1')
  _real(config, 'fedmchain.reg_w2')
  _real(config, 'fedmchain.rho', 0, 1, low_open=True)
  _boolean(config, 'fedmchain.error_feedback')
  _real(config, 'fedmchain.tau', -1, 1, high_open=True)
  _integer(config, 'fedmchain.max_groups')
  _choice(config, 'fedmchain.combine', ('weighted', 'largest'))
  _choice(config, 'fedmchain.aggregator', ('ssca', 'mean'))
  _choice(config, 'fedmchain.normalize', ssca.NORMALIZE)
  _real(config, 'faults.dropout_rate', 0, 1, high_open=True)
  _real(config, 'faults.nonfinite_rate', 0, 1)
  _choice(config, 'faults.attack', ('none', 'sign_flip', 'scale', 'noise'))
  _real(config, 'faults.attack_fraction', 0, 1)
  _real(config, 'faults.attack_scale')
  _real(config, 'ogm.alpha', low=0, low_open=True)
  _boolean(config, 'ogm.noise')
  _integer(config, 'eval.batch_size')
  _boolean(config, 'eval.aggregation_metrics')
  _real(config, 'data.validation_fraction', 0, 1, high_open=True)
  split = _choice(config, 'eval.split', HELD_OUT)
  if split == 'validation' and not config.data.validation_fraction > 0:
    raise ConfigError('eval.split', split,
                      'needs data.validation_fraction > 0 (the share of each '
                      "client's examples held out), e.g. 0.1")
