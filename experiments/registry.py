"""Every name a config may use, registered once.

  ALGORITHMS  config.algorithm      -> `Algorithm` (how the round is built)
  OPTIMIZERS  config.*.optimizer    -> optax factory (lr, momentum)
  DATASETS    config.data.name      -> (train, held-out split, num_classes)
  MODELS      the model of a run    -> Flax module builder

Config checks, the launcher, the sweep, the study and the benchmark read
their allowed values here. A new entry needs nothing else to become a
config choice; give it a config file whose docstring states its command and
expected result.
"""

import functools
from typing import Callable, NamedTuple

import optax

import fedmchain_jax as fmc


class Algorithm(NamedTuple):
  """A config.algorithm choice.

  Attributes:
    build: `build(config, value, apply_fn, modalities, num_clients,
      placement, faults) -> FederatedAlgorithm`, `value(field)` giving a
      config field or the sweep's traced override of it.
    local_training: 'joint' or 'chain' (what the benchmark counts as work).
    fedmchain: {setting: value} this preset fixes over `config.fedmchain`
      (FedMChain's ablations), or None for an algorithm without those
      settings.
    in_study: run by `experiments.study` by default.
  """
  build: Callable
  local_training: str = 'joint'
  fedmchain: dict | None = None
  in_study: bool = True


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


def _measured(config, aggregator):
  """The aggregator, with 'agg/*' metrics when the config asks for them."""
  if config.eval.aggregation_metrics:
    return fmc.aggregators.with_metrics(aggregator)
  return aggregator


def _fedavg(aggregator=fmc.aggregators.weighted_mean, prox=False,
            server=None):
  def build(config, value, apply_fn, modalities, num_clients, placement,
            faults):
    del modalities, num_clients
    return fmc.algorithms.fedavg(
        fmc.losses.fused_classification_loss(apply_fn),
        *_optimizers(config, value, server), config.client.num_local_steps,
        config.rounds.cohort_size,
        config.client.batch_size,
        prox_mu=value('fedprox.mu') if prox else 0.0,
        aggregator=_measured(config, aggregator()),
        placement=placement, faults=faults)
  return build


def _fedavg_ogm(config, value, apply_fn, modalities, num_clients, placement,
                faults):
  del num_clients
  return fmc.algorithms.fedavg_ogm_ge(
      apply_fn, modalities, *_optimizers(config, value),
      config.client.num_local_steps, config.rounds.cohort_size,
      config.client.batch_size, alpha=value('ogm.alpha'),
      noise=config.ogm.noise,
      aggregator=_measured(config, fmc.aggregators.weighted_mean()),
      placement=placement, faults=faults)


def fedmchain_setting(config, name: str, value=None):
  """A FedMChain setting as the algorithm applies it: the preset's value
  where it fixes one (`fedmchain_noreg`: reg_lambda 0), else
  `config.fedmchain.<name>` (or `value('fedmchain.<name>')`)."""
  preset = ALGORITHMS[config.algorithm].fedmchain or {}
  if name in preset:
    return preset[name]
  return value(f'fedmchain.{name}') if value else config.fedmchain[name]


def _fedmchain(config, value, apply_fn, modalities, num_clients, placement,
               faults, server=None):
  def setting(name):
    return fedmchain_setting(config, name, value)

  if setting('aggregator') == 'mean':
    aggregator = fmc.aggregators.weighted_mean()
  else:
    aggregator = fmc.aggregators.ssca(
        setting('tau'), setting('max_groups'), setting('combine'),
        agreement_dtype=config.rounds.agreement_dtype,
        row_groups=config.rounds.agreement_row_groups or None,
        materialize=config.rounds.agreement_materialize,
        normalize=setting('normalize'))
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
      aggregator=_measured(config, aggregator), placement=placement,
      faults=faults)


def _chain(server=None, **fixed) -> Algorithm:
  """A FedMChain preset: `fixed` settings over `config.fedmchain`; `server`
  names the server optimizer in place of `config.server.optimizer`."""
  fixed = {'local_training': 'chain', **fixed}
  build = (functools.partial(_fedmchain, server=server) if server
           else _fedmchain)
  return Algorithm(build, fixed['local_training'], fixed)


# Trimmed mean's share cut from each end: up to 20% attackers removed.
TRIM = 0.2

ALGORITHMS = {
    'fedavg': Algorithm(_fedavg()),
    'fedprox': Algorithm(_fedavg(prox=True)),
    'fedavg_ogm': Algorithm(_fedavg_ogm),
    # FedOpt (Reddi et al., ICLR 2021): server Adam / Yogi at server.lr
    # (experiments/configs/fedopt.py: 0.01; the study tunes it).
    'fedopt_adam': Algorithm(_fedavg(server='adam')),
    'fedopt_yogi': Algorithm(_fedavg(server='yogi')),
    'fedmchain': _chain(),
    # FedOpt's server Adam on FedMChain's sparse consensus aggregate (the
    # diagnosis's largest gain on validation, docs/RESULTS.md).
    'fedmchain_adam': _chain(server='adam'),
    'fedmchain_noreg': _chain(reg_lambda=0.0, aggregator='ssca'),
    'fedmchain_mean': _chain(aggregator='mean', rho=1.0,
                             error_feedback=False),
    # tau below any agreement links every pair: one group, plain TIES.
    'fedmchain_ties': _chain(max_groups=1, tau=-2.0, aggregator='ssca'),
    'joint_ssca': _chain(local_training='joint', aggregator='ssca'),
    # FedAvg's local work with FedMChain's sparse upload and error feedback,
    # merged by the mean: the control for the sparse upload.
    'joint_sparse_mean': _chain(local_training='joint', aggregator='mean'),
    'fedavg_median': Algorithm(_fedavg(fmc.aggregators.coordinate_median),
                               in_study=False),
    'fedavg_trimmed_mean': Algorithm(
        _fedavg(lambda: fmc.aggregators.trimmed_mean(TRIM)), in_study=False),
}

OPTIMIZERS = {
    'sgd': lambda lr, momentum: optax.sgd(lr, momentum=momentum or None),
    'momentum': lambda lr, momentum: optax.sgd(lr, momentum=momentum or 0.9),
    'adam': lambda lr, momentum: optax.adam(lr),
    'adagrad': lambda lr, momentum: optax.adagrad(lr),
    'yogi': lambda lr, momentum: optax.yogi(lr),
}


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


DATASETS = {'synthetic': _synthetic,
            'av_digits': _raw_dataset('av_digits', 'clients_per_speaker',
                                      _av_digits_options),
            'uci_har': _raw_dataset('uci_har', 'clients_per_subject'),
            'crema_d': _raw_dataset('crema_d', 'clients_per_actor')}
# Datasets read from raw files through a TFDS builder (`data.manual_dir`,
# `data.data_dir`, `data.partition`, `data.clients_per_speaker`).
RAW_DATASETS = ('av_digits', 'uci_har', 'crema_d')


def _late_fusion(config, modalities, num_classes):
  return fmc.models.LateFusionClassifier(
      modalities=tuple(modalities), hidden=tuple(config.model.hidden),
      num_classes=num_classes, encoder=config.model.encoder,
      dtype=fmc.models.DTYPES[config.model.dtype])


MODELS = {'late_fusion_mlp': _late_fusion}
MODEL = 'late_fusion_mlp'
