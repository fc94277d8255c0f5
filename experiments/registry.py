"""Every name a config, the study or a doc may use, written once.

  ALGORITHMS   config.algorithm            -> `Algorithm`: how the round is
               built, its tuning grid and its role in the study
  AGGREGATORS  config.fedmchain.aggregator -> `AggregatorEntry`
  OPTIMIZERS   config.*.optimizer          -> optax factory (lr, momentum)
  DATASETS     config.data.name            -> `Dataset`: loader, base
               config, own field checks, study settings
  MODELS       the model of a run          -> Flax module builder

Config checks, the launcher, the sweep, the study, robustness and the
benchmark read their names here, and `tests/test_registry.py` checks the
docs' lists against them. A new algorithm preset, aggregator or dataset is
one entry here (plus its own module, config file and tests).
"""

import functools
from typing import Callable, NamedTuple

import optax

import fedmchain_jax as fmc
from fedmchain_jax.data import builders
from experiments import fields
from experiments.configs import av_digits_fedavg
from experiments.configs import crema_d_fedavg
from experiments.configs import default
from experiments.configs import uci_har_fedavg

# An algorithm's part in `experiments.study`: FedMChain as reconstructed
# (the summary's columns), a baseline it is judged against, or an ablation
# of FedMChain's parts.
ROLES = ('ours', 'baseline', 'ablation')


class Algorithm(NamedTuple):
  """A config.algorithm choice.

  Attributes:
    build: `build(config, value, apply_fn, modalities, num_clients,
      placement, faults) -> FederatedAlgorithm`, `value(field)` giving a
      config field or the sweep's traced override of it.
    grid: the study's tuning stages, each {field: values} swept as one
      program from the earlier stages' choice.
    role: one of ROLES.
    local_training: 'joint' or 'chain' (what the benchmark counts as work).
    fedmchain: {setting: value} this preset fixes over `config.fedmchain`
      (FedMChain's ablations), or None for an algorithm without those
      settings.
    sections: config sections besides the common ones the algorithm reads
      (a saved sweep of it is compared on these only).
    in_study: run by `experiments.study` unless --algorithms names it.
  """
  build: Callable
  grid: tuple
  role: str = 'baseline'
  local_training: str = 'joint'
  fedmchain: dict | None = None
  sections: tuple[str, ...] = ()
  in_study: bool = True


class AggregatorEntry(NamedTuple):
  """A config.fedmchain.aggregator choice (and the merge of FedAvg's
  robust presets).

  Attributes:
    build: `build(config, setting) -> fmc.aggregators.Aggregator`,
      `setting(name)` giving the run's `fedmchain.<name>`.
    fields: the config fields it reads.
  """
  build: Callable
  fields: tuple[str, ...] = ()


def optimizer(name: str, lr, momentum: float = 0.0
              ) -> optax.GradientTransformation:
  """The optax optimizer registered as `name`, at learning rate `lr`."""
  return OPTIMIZERS[name](lr, momentum)


def _optimizers(config, value, server=None):
  """(client, server) optimizers of a config, at their (swept) rates;
  `server` names the server's in place of `config.server.optimizer`."""
  return (optimizer(config.client.optimizer, value('client.lr'),
                    config.client.momentum),
          optimizer(server or config.server.optimizer, value('server.lr'),
                    config.server.momentum))


def aggregator(config, name: str, setting=None):
  """The aggregator registered as `name` for this config, with 'agg/*'
  metrics when the config asks for them; `setting(name)` gives FedMChain's
  settings (default: `fedmchain_setting`)."""
  setting = setting or functools.partial(fedmchain_setting, config)
  built = AGGREGATORS[name].build(config, setting)
  if config.eval.aggregation_metrics:
    return fmc.aggregators.with_metrics(built)
  return built


def _fedavg(merge='mean', prox=False, server=None):
  def build(config, value, apply_fn, modalities, num_clients, placement,
            faults):
    del modalities, num_clients
    return fmc.algorithms.fedavg(
        fmc.losses.fused_classification_loss(apply_fn),
        *_optimizers(config, value, server), config.client.num_local_steps,
        config.rounds.cohort_size,
        config.client.batch_size,
        prox_mu=value('fedprox.mu') if prox else 0.0,
        aggregator=aggregator(config, merge),
        placement=placement, faults=faults)
  return build


def _fedavg_ogm(config, value, apply_fn, modalities, num_clients, placement,
                faults):
  del num_clients
  return fmc.algorithms.fedavg_ogm_ge(
      apply_fn, modalities, *_optimizers(config, value),
      config.client.num_local_steps, config.rounds.cohort_size,
      config.client.batch_size, alpha=value('ogm.alpha'),
      noise=config.ogm.noise, aggregator=aggregator(config, 'mean'),
      placement=placement, faults=faults)


def fixed_settings(config) -> dict:
  """{`fedmchain.<name>`: value} the config's preset fixes whatever the
  config says (`fedmchain_noreg`: reg_lambda 0); the launcher logs them."""
  preset = ALGORITHMS[config.algorithm].fedmchain or {}
  return {f'fedmchain.{k}': v for k, v in preset.items()
          if k in config.fedmchain}


def fedmchain_setting(config, name: str, value=None):
  """A FedMChain setting as the algorithm applies it: the preset's value
  where it fixes one (`fixed_settings`), else `config.fedmchain.<name>`
  (or `value('fedmchain.<name>')`)."""
  preset = ALGORITHMS[config.algorithm].fedmchain or {}
  if name in preset:
    return preset[name]
  return value(f'fedmchain.{name}') if value else config.fedmchain[name]


def _fedmchain(config, value, apply_fn, modalities, num_clients, placement,
               faults, server=None):
  def setting(name):
    return fedmchain_setting(config, name, value)

  return fmc.algorithms.fedmchain(
      apply_fn, modalities, *_optimizers(config, value, server),
      steps_per_phase=config.client.steps_per_phase,
      cohort_size=config.rounds.cohort_size,
      batch_size=config.client.batch_size, num_clients=num_clients,
      local_training=setting('local_training'),
      chain_order=tuple(config.fedmchain.chain_order) or None,
      chain_rule=config.fedmchain.chain_rule,
      regularizer=fmc.client.Regularizer(
          kind=config.fedmchain.regularizer, lam=setting('reg_lambda'),
          w1=config.fedmchain.reg_w1, w2=config.fedmchain.reg_w2),
      rho=setting('rho'), error_feedback=setting('error_feedback'),
      aggregator=aggregator(config, setting('aggregator'), setting),
      placement=placement, faults=faults)


def _chain(grid, role='ablation', server=None, **fixed) -> Algorithm:
  """A FedMChain preset: `fixed` settings over `config.fedmchain`; `server`
  names the server optimizer in place of `config.server.optimizer`."""
  fixed = {'local_training': 'chain', **fixed}
  build = (functools.partial(_fedmchain, server=server) if server
           else _fedmchain)
  return Algorithm(build, grid, role, fixed['local_training'], fixed,
                   sections=('fedmchain',))


# The study's grids (`Algorithm.grid`): the values each rate or strength is
# tuned over on validation.
_LR = (0.05, 0.1, 0.2)
_RHO = (0.05, 0.1, 0.3)
# The sparse methods' aggregate is not the dense mean's size (agg/*/
# norm_ratio), so their server SGD rate is tuned too.
_SERVER_LR = (0.5, 1.0, 2.0)
_ADAM_LR = (0.003, 0.01, 0.03)
_TAU = (-0.2, 0.0, 0.2)
_LAMBDA = (0.3, 1.0, 3.0)
_SPARSE = {'client.lr': _LR, 'fedmchain.rho': _RHO}

# Trimmed mean's share cut from each end: up to 20% attackers removed.
TRIM = 0.2

ALGORITHMS = {
    'fedavg': Algorithm(_fedavg(), ({'client.lr': _LR},)),
    'fedprox': Algorithm(
        _fedavg(prox=True),
        ({'client.lr': _LR, 'fedprox.mu': (0.001, 0.01, 0.1)},),
        sections=('fedprox',)),
    'fedavg_ogm': Algorithm(
        _fedavg_ogm, ({'client.lr': _LR, 'ogm.alpha': (0.1, 0.5, 1.0)},),
        sections=('ogm',)),
    # FedOpt (Reddi et al., ICLR 2021): server Adam / Yogi at server.lr
    # (experiments/configs/fedopt.py: 0.01; the study tunes it).
    'fedopt_adam': Algorithm(_fedavg(server='adam'),
                             ({'client.lr': _LR, 'server.lr': _ADAM_LR},)),
    'fedopt_yogi': Algorithm(_fedavg(server='yogi'),
                             ({'client.lr': _LR, 'server.lr': _ADAM_LR},)),
    'fedmchain': _chain(({**_SPARSE},
                         {'server.lr': _SERVER_LR, 'fedmchain.tau': _TAU},
                         {'fedmchain.reg_lambda': _LAMBDA}), role='ours'),
    # FedOpt's server Adam on FedMChain's sparse consensus aggregate (the
    # diagnosis's largest gain on validation, docs/RESULTS.md).
    'fedmchain_adam': _chain(({**_SPARSE},
                              {'server.lr': (0.001, 0.003, 0.01),
                               'fedmchain.tau': _TAU},
                              {'fedmchain.reg_lambda': _LAMBDA}),
                             role='ours', server='adam'),
    'fedmchain_noreg': _chain(({**_SPARSE},
                               {'server.lr': _SERVER_LR,
                                'fedmchain.tau': _TAU}),
                              reg_lambda=0.0, aggregator='ssca'),
    'fedmchain_mean': _chain(({'client.lr': _LR},), aggregator='mean',
                             rho=1.0, error_feedback=False),
    # tau below any agreement links every pair: one group, plain TIES.
    'fedmchain_ties': _chain(({**_SPARSE}, {'server.lr': _SERVER_LR}),
                             max_groups=1, tau=-2.0, aggregator='ssca'),
    'joint_ssca': _chain(({**_SPARSE},
                          {'server.lr': _SERVER_LR, 'fedmchain.tau': _TAU}),
                         local_training='joint', aggregator='ssca'),
    # FedAvg's local work with FedMChain's sparse upload and error feedback,
    # merged by the mean: the control for the sparse upload.
    'joint_sparse_mean': _chain(({**_SPARSE}, {'server.lr': _SERVER_LR}),
                                role='baseline', local_training='joint',
                                aggregator='mean'),
    'fedavg_median': Algorithm(_fedavg('median'), ({'client.lr': _LR},),
                               in_study=False),
    'fedavg_trimmed_mean': Algorithm(_fedavg('trimmed_mean'),
                                     ({'client.lr': _LR},), in_study=False),
}


def names(role: str) -> tuple[str, ...]:
  """The algorithms of one study role, in registry order."""
  return tuple(n for n, a in ALGORITHMS.items() if a.role == role)


def _ssca(config, setting):
  return fmc.aggregators.ssca(
      setting('tau'), setting('max_groups'), setting('combine'),
      agreement_dtype=config.rounds.agreement_dtype,
      row_groups=config.rounds.agreement_row_groups or None,
      materialize=config.rounds.agreement_materialize,
      normalize=setting('normalize'))


AGGREGATORS = {
    'ssca': AggregatorEntry(
        _ssca, ('fedmchain.tau', 'fedmchain.max_groups',
                'fedmchain.combine', 'fedmchain.normalize',
                'rounds.agreement_dtype', 'rounds.agreement_row_groups',
                'rounds.agreement_materialize')),
    'mean': AggregatorEntry(lambda config, setting: (
        fmc.aggregators.weighted_mean())),
    'median': AggregatorEntry(lambda config, setting: (
        fmc.aggregators.coordinate_median())),
    'trimmed_mean': AggregatorEntry(lambda config, setting: (
        fmc.aggregators.trimmed_mean(TRIM))),
}

OPTIMIZERS = {
    'sgd': lambda lr, momentum: optax.sgd(lr, momentum=momentum or None),
    'momentum': lambda lr, momentum: optax.sgd(lr, momentum=momentum or 0.9),
    'adam': lambda lr, momentum: optax.adam(lr),
    'adagrad': lambda lr, momentum: optax.adagrad(lr),
    'yogi': lambda lr, momentum: optax.yogi(lr),
}


class Dataset(NamedTuple):
  """A config.data.name choice.

  Attributes:
    load: `load(config) -> (train, held-out split, num_classes)`.
    config: its base config (`experiments/configs/`).
    check: `check(config)` of the fields only this dataset reads, raising
      `fields.ConfigError`.
    raw_module: the `fedmchain_jax.data` module that builds it from raw
      files through TFDS, or None (embedded).
    target: the study's fused-accuracy target (rounds and bytes to it).
    rounds: the study's rounds a run.
    dirichlet_clients: clients of the study's label-skewed (alpha) axis, or
      None when `data.num_clients` already is.
    skipped_when_absent: the study goes on without it when its raw files
      are absent, saying why.
  """
  load: Callable
  config: Callable
  check: Callable
  raw_module: str | None = None
  target: float = 0.85
  rounds: int = 100
  dirichlet_clients: int | None = None
  skipped_when_absent: bool = False


def _synthetic(config):
  spec = config.data.synthetic
  modalities = [
      fmc.data.synthetic.ModalitySpec(name, int(dim), float(p), float(s))
      for name, dim, p, s in zip(spec.modalities, spec.dims,
                                 spec.informativeness, spec.noise_scale)
  ]
  train, test = fmc.data.synthetic.make_federated(
      seed=config.seed,
      num_clients=config.data.num_clients,
      examples_per_client=config.data.examples_per_client,
      num_test=config.data.num_test,
      num_classes=config.data.num_classes,
      modalities=modalities,
      dirichlet_alpha=config.data.dirichlet_alpha,
      missing_modality_rate=config.data.missing_modality_rate,
      min_examples=config.data.min_examples,
      validation_fraction=config.data.validation_fraction,
      held_out=config.eval.split)
  return train, test, config.data.num_classes


def _check_synthetic(config):
  names_ = fields.get(config, 'data.synthetic.modalities')
  if (not isinstance(names_, (tuple, list)) or not names_
      or not all(isinstance(n, str) and n.isidentifier() for n in names_)
      or len(set(names_)) != len(names_)):
    raise fields.ConfigError('data.synthetic.modalities', names_,
                             'must be a non-empty tuple of distinct '
                             'identifiers')
  spec = config.data.synthetic
  for field, valid, allowed in (
      ('dims', lambda d: isinstance(d, int) and not isinstance(d, bool)
       and d >= 1, 'an integer >= 1'),
      ('informativeness', lambda p: fields.is_number(p) and 0 <= p <= 1,
       'in [0, 1]'),
      ('noise_scale', lambda s: fields.is_number(s) and s >= 0, '>= 0')):
    values = fields.per_modality(config, f'data.synthetic.{field}',
                                 len(names_))
    if not all(map(valid, values)):
      raise fields.ConfigError(f'data.synthetic.{field}', spec[field],
                               f'every entry must be {allowed}')
  if config.rounds.cohort_size > config.data.num_clients:
    raise fields.ConfigError(
        'rounds.cohort_size', config.rounds.cohort_size,
        f'must be <= data.num_clients ({config.data.num_clients})')


def _check_raw(config):
  for field in ('data.manual_dir', 'data.data_dir'):
    fields.directory(config, field)
  fields.choice(config, 'data.partition', builders.PARTITIONS)
  fields.integer(config, 'data.clients_per_speaker')


def _check_av_digits(config):
  _check_raw(config)
  fields.choice(config, 'data.source', ('manual', 'catalog'))
  fields.integer(config, 'data.pairing_seed', low=0)
  snr = fields.get(config, 'data.audio_snr_db')
  if snr is not None and not fields.is_number(snr):
    raise fields.ConfigError('data.audio_snr_db', snr,
                             'must be a number (dB) or None for clean audio')
  fields.real(config, 'data.image_energy_removed', 0, 1, high_open=True)


def _av_digits_options(config, module):
  """AV-digits' own loader arguments: its builder config and source."""
  snr = config.data.audio_snr_db
  return {'config': module.make_config(
              config.data.pairing_seed, None if snr is None else float(snr),
              config.data.image_energy_removed),
          'source': config.data.source}


def _raw_dataset(module_name, group_argument, options=None):
  """A raw-file TFDS dataset's loader from the config's common fields (and
  `options(config, module)`, its own arguments)."""

  def load(config):
    # Imported here: they need the `data` extra (tensorflow-datasets).
    # pylint: disable=g-import-not-at-top
    import importlib
    import tensorflow_datasets as tfds
    module = importlib.import_module(f'fedmchain_jax.data.{module_name}')
    tfds.disable_progress_bar()
    train, test = module.load_federated(
        config.data.manual_dir, config.data.data_dir, seed=config.seed,
        partition=config.data.partition,
        num_clients=config.data.num_clients,
        dirichlet_alpha=config.data.dirichlet_alpha,
        missing_modality_rate=config.data.missing_modality_rate,
        min_examples=config.data.min_examples,
        validation_fraction=config.data.validation_fraction,
        held_out=config.eval.split,
        **{group_argument: config.data.clients_per_speaker},
        **(options(config, module) if options else {}))
    return train, test, len(module.LABELS)

  return load


DATASETS = {
    'synthetic': Dataset(_synthetic, default.get_config, _check_synthetic),
    'av_digits': Dataset(
        _raw_dataset('av_digits', 'clients_per_speaker', _av_digits_options),
        av_digits_fedavg.get_config, _check_av_digits, 'av_digits',
        target=0.95, dirichlet_clients=30),
    'uci_har': Dataset(
        _raw_dataset('uci_har', 'clients_per_subject'),
        uci_har_fedavg.get_config, _check_raw, 'uci_har', target=0.85,
        rounds=200, dirichlet_clients=105, skipped_when_absent=True),
    'crema_d': Dataset(
        _raw_dataset('crema_d', 'clients_per_actor'),
        crema_d_fedavg.get_config, _check_raw, 'crema_d', target=0.5,
        rounds=200, dirichlet_clients=73, skipped_when_absent=True),
}


def _late_fusion(config, modalities, num_classes):
  return fmc.models.LateFusionClassifier(
      modalities=tuple(modalities), hidden=tuple(config.model.hidden),
      num_classes=num_classes, encoder=config.model.encoder,
      dtype=fmc.models.DTYPES[config.model.dtype])


MODELS = {'late_fusion_mlp': _late_fusion}
MODEL = 'late_fusion_mlp'
