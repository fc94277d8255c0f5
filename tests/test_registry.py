"""The registry is the one place a name is written: the config checks, the
study and the docs follow it."""

import importlib
import logging
import os
import re

import pytest

import fedmchain_jax as fmc
from fedmchain_jax import client
from fedmchain_jax import faults
from fedmchain_jax import models
from fedmchain_jax import placement
from fedmchain_jax import ssca
from fedmchain_jax.data import builders
from fedmchain_jax.data import federated
from experiments import config_checks
from experiments import registry
from experiments import sweep
from experiments import train
from experiments.configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
  with open(os.path.join(ROOT, *path)) as f:
    return f.read()


def _with(config, field, value):
  node = config
  *parents, leaf = field.split('.')
  for part in parents:
    node = node[part]
  node[leaf] = value
  return config


@pytest.mark.parametrize('field, allowed, data', [
    ('algorithm', tuple(registry.ALGORITHMS), 'synthetic'),
    ('data.name', tuple(registry.DATASETS), 'synthetic'),
    ('client.optimizer', tuple(registry.OPTIMIZERS), 'synthetic'),
    ('fedmchain.aggregator', tuple(registry.AGGREGATORS), 'synthetic'),
    ('rounds.mesh_reduction', placement.MESH_REDUCTIONS, 'synthetic'),
    ('rounds.agreement_dtype', ssca.AGREEMENT_DTYPES, 'synthetic'),
    ('fedmchain.combine', ssca.COMBINES, 'synthetic'),
    ('fedmchain.normalize', ssca.NORMALIZE, 'synthetic'),
    ('fedmchain.chain_rule', fmc.algorithms.CHAIN_RULES, 'synthetic'),
    ('fedmchain.regularizer', client.REGULARIZERS, 'synthetic'),
    ('faults.attack', faults.ATTACKS, 'synthetic'),
    ('eval.split', federated.HELD_OUT, 'synthetic'),
    ('model.encoder', tuple(models.ENCODERS), 'synthetic'),
    ('model.dtype', tuple(models.DTYPES), 'synthetic'),
    ('data.partition', builders.PARTITIONS, 'av_digits'),
])
def test_config_checks_allow_exactly_the_registered_choices(field, allowed,
                                                             data):
  base = registry.DATASETS[data].config
  for value in allowed:
    config = _with(base(), field, value)
    if value == 'validation':
      config.data.validation_fraction = 0.1
    config_checks.validate(config)
  with pytest.raises(config_checks.ConfigError) as info:
    config_checks.validate(_with(base(), field, 'nonesuch'))
  assert str(info.value) == (f"config.{field}='nonesuch' is invalid: must "
                             f"be one of {', '.join(allowed)}")


def test_entries_name_real_fields_roles_and_configs():
  config = default.get_config()
  for name, algorithm in registry.ALGORITHMS.items():
    assert algorithm.role in registry.ROLES, name
    assert algorithm.local_training in ('joint', 'chain'), name
    assert algorithm.grid, name
    for stage in algorithm.grid:
      for field in stage:
        assert field in train.SWEEPABLE, (name, field)
    for section in algorithm.sections:
      assert section in config, (name, section)
    for setting in algorithm.fedmchain or {}:
      assert setting in config.fedmchain or setting == 'local_training'
  for name, entry in registry.AGGREGATORS.items():
    for field in entry.fields:
      config_checks.fields.get(config, field)
  for name, entry in registry.DATASETS.items():
    assert entry.config().data.name == name
    entry.check(entry.config())
    if entry.raw_module:
      importlib.import_module(f'fedmchain_jax.data.{entry.raw_module}')
  assert registry.names('ours') == ('fedmchain', 'fedmchain_adam')


def _names_in(text):
  return set(re.findall(r'`?([a-z][a-z0-9_]*)`?', text))


def test_docs_list_every_registered_name():
  algorithms, datasets = set(registry.ALGORITHMS), set(registry.DATASETS)
  readme = _read('README.md')
  listed = re.search(r'`algorithm` \((.*?); `experiments/registry.py`\)',
                     readme, re.S).group(1)
  assert _names_in(listed) == algorithms
  listed = re.search(r'`data.name` \((.*?)\)', readme, re.S).group(1)
  assert _names_in(listed) == datasets
  reliability = _read('docs', 'reliability.md')
  row = re.search(r'^\| `algorithm` \| (.*?) \(', reliability, re.M).group(1)
  assert _names_in(row) == algorithms
  row = re.search(r'^\| `data.name` \| (.*?) \|$', reliability,
                  re.M).group(1)
  assert _names_in(row) == datasets
  row = re.search(r'^\| `fedmchain.aggregator` \| (.*?) \(', reliability,
                  re.M).group(1)
  assert _names_in(row) == set(registry.AGGREGATORS)
  row = re.search(r'^\| `client.optimizer`, `server.optimizer` \| (.*?) \|$',
                  reliability, re.M).group(1)
  assert _names_in(row) == set(registry.OPTIMIZERS)
  comment = re.search(r'  # (fedavg .*?)\n  # \(experiments/registry.py',
                      _read('experiments', 'configs', 'default.py'),
                      re.S).group(1)
  assert _names_in(comment.replace('#', '')) == algorithms
  table = _read('docs', 'algorithm.md').split(
      '### Algorithms (`config.algorithm`)')[1].split('\n\n')[1]
  rows = {name for line in table.splitlines()[2:]
          for name in re.findall(r'`([a-z0-9_]+)`', line.split('|')[1])}
  assert rows == algorithms


def test_a_preset_says_which_field_it_sets(tmp_path, caplog):
  from tests.test_launcher import tiny_config
  config = tiny_config(algorithm='fedmchain_noreg',
                       **{'fedmchain.reg_lambda': 0.5})
  assert registry.fixed_settings(config) == {
      'fedmchain.reg_lambda': 0.0, 'fedmchain.aggregator': 'ssca'}
  with caplog.at_level(logging.INFO):
    train.log_fixed_settings(config)
  assert caplog.messages == [
      'algorithm fedmchain_noreg sets fedmchain.reg_lambda=0.0 (the config '
      'has 0.5).']
  config.fedmchain.reg_lambda = 0.0
  caplog.clear()
  with caplog.at_level(logging.INFO):
    train.log_fixed_settings(config)
  assert not caplog.messages
  with pytest.raises(config_checks.ConfigError) as info:
    sweep.expand(config, {'fedmchain.reg_lambda': [0.1, 1.0]})
  assert str(info.value) == (
      "--sweep entry 'fedmchain.reg_lambda=[0.1, 1.0]' is invalid: algorithm "
      'fedmchain_noreg fixes fedmchain.reg_lambda at 0.0, so every member '
      'would run the same; sweep another field')


def test_sweep_errors_name_the_flag():
  with pytest.raises(config_checks.ConfigError) as info:
    sweep.parse_sweep('client.lr=[0.1];seed')
  assert str(info.value) == (
      "--sweep entry 'seed' is invalid: each entry must read "
      'field=[v1,v2,...]')
  with pytest.raises(config_checks.ConfigError) as info:
    sweep.expand(default.get_config(), {'client.batch_size': [8, 16]})
  assert str(info.value).startswith(
      "--sweep entry 'client.batch_size=[8, 16]' is invalid: only these "
      'fields can be swept in one program: seed, client.lr')


def test_the_algorithm_table_says_what_each_preset_runs():
  # Local training, upload and merge of each FedMChain-family row of
  # docs/algorithm.md, against the preset's settings on the default config.
  table = _read('docs', 'algorithm.md').split(
      '### Algorithms (`config.algorithm`)')[1].split('\n\n')[1]
  rows = {}
  for line in table.splitlines()[2:]:
    cells = [c.strip() for c in re.split(r'(?<!\\)\|', line.strip('|'))]
    for name in re.findall(r'`([a-z0-9_]+)`', cells[0]):
      rows[name] = cells[1:]
  for name, algorithm in registry.ALGORITHMS.items():
    training, upload, merge = rows[name]
    assert training.startswith(algorithm.local_training), name
    if algorithm.fedmchain is None:
      continue
    config = default.get_config()
    config.algorithm = name
    setting = lambda field: registry.fedmchain_setting(config, field)
    sparse = setting('rho') < 1 or setting('error_feedback')
    assert upload == ('top-rho, error feedback' if sparse else 'dense'), name
    assert merge.startswith('SSCA' if setting('aggregator') == 'ssca'
                            else 'weighted mean'), name
