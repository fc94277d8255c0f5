"""Sweeps: many runs as one vmapped program, equal to the single runs."""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import config_checks
from experiments import sweep
from experiments import train
from tests.test_launcher import tiny_config, without_times


def test_parse_sweep():
  assert sweep.parse_sweep('client.lr=[0.01, 0.1]; seed=[0,1,2]') == {
      'client.lr': [0.01, 0.1], 'seed': [0, 1, 2]}
  with pytest.raises(config_checks.ConfigError, match='field=\\[v1'):
    sweep.parse_sweep('client.lr')
  with pytest.raises(config_checks.ConfigError, match='non-empty list'):
    sweep.parse_sweep('client.lr=[]')


def test_unsweepable_field_and_bad_value_are_refused():
  config = tiny_config()
  with pytest.raises(config_checks.ConfigError,
                     match='only these fields can be swept'):
    sweep.expand(config, {'model.hidden': [(8,), (16,)]})
  with pytest.raises(config_checks.ConfigError,
                     match=r'config.client.lr=-1.0 is invalid'):
    sweep.expand(config, {'client.lr': [0.1, -1.0]})


@pytest.mark.parametrize('algorithm, field, values', [
    ('fedavg', 'client.lr', [0.02, 0.1]),
    ('fedmchain', 'fedmchain.reg_lambda', [0.0, 2.0]),
])
def test_member_equals_the_single_run(tmp_path, algorithm, field, values):
  config = tiny_config(algorithm=algorithm, **{'rounds.num_rounds': 4,
                                               'rounds.eval_every': 2})
  result = sweep.run_sweep(config, {field: values, 'seed': [0, 1]},
                           str(tmp_path / 'sweep'), sequential_baseline=False)
  assert len(result['members']) == 4
  for i, member in enumerate(result['members']):
    settings = member['settings']
    single_config = sweep.with_settings(config, settings)
    single = train.train_and_evaluate(single_config,
                                      str(tmp_path / f'single_{i}'))
    with open(tmp_path / 'sweep' / f'member_{i}' / 'metrics.jsonl') as f:
      swept = [json.loads(line) for line in f]
    assert [r['round'] for r in swept] == [2, 4]
    for a, b in zip(without_times(swept), without_times(single)):
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f'member {i} {key}')
    manager = ocp.CheckpointManager(str(tmp_path / f'single_{i}' /
                                        'checkpoints'))
    params = manager.restore(manager.latest_step())['state']['params']
    jax.tree.map(
        lambda s, p: np.testing.assert_allclose(s[i], p, rtol=1e-5,
                                                atol=1e-6),
        result['params'], params)
  # Different settings give different runs.
  finals = [m['final']['eval/loss'] for m in result['members']]
  assert len(set(finals)) == 4
  summary = (tmp_path / 'sweep' / 'summary.md').read_text()
  assert f'{field}={values[0]}' in summary and '| 2 |' in summary
