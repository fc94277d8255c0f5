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


@pytest.mark.parametrize('algorithm, field, values, other', [
    ('fedavg', 'client.lr', [0.02, 0.1], {'seed': [0, 1]}),
    # Two of FedMChain's fields at once (rho is static in a single run).
    ('fedmchain', 'fedmchain.reg_lambda', [0.0, 2.0],
     {'fedmchain.rho': [0.03, 0.3]}),
])
def test_member_equals_the_single_run(tmp_path, algorithm, field, values,
                                      other):
  config = tiny_config(algorithm=algorithm, **{'rounds.num_rounds': 4,
                                               'rounds.eval_every': 2})
  result = sweep.run_sweep(config, {field: values, **other},
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
  seeds = len(other.get('seed', [0]))  # A row per setting, over its seeds.
  assert f'{field}={values[0]}' in summary and f'| {seeds} | 4 |' in summary
  mib = result['members'][0]['final']['comm/upload_bytes'] / 2**20
  assert '| upload MiB | download MiB |' in summary
  assert f' | {mib:.1f} | ' in summary


def test_sweep_on_sweep_by_clients_meshes_matches_one_device():
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ,
             XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu', PYTHONPATH=root)
  result = subprocess.run(
      [sys.executable, os.path.join(root, 'tests', 'helpers',
                                    'sharded_sweep.py'), 'fedmchain'],
      cwd=root, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 8
  for layout in ('2x4', '8x1'):
    # 6 members over a sweep axis of 2 or 8 (padded to 8), each member's
    # cohort of 3 over a clients axis of 4 or 1 (padded to 4).
    assert report[layout]['members'] == 6
    assert report[layout]['params'] < 1e-6, report
    assert report[layout]['finals'] < 1e-5, report


def _free_port():
  import socket
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
  import subprocess
  import sys
  from tests.test_launcher import TINY
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  overrides = [f'--config.{k}={v}' for k, v in TINY.items()
               if k != 'model.hidden']
  base = [sys.executable, '-m', 'experiments.sweep',
          '--config=experiments/configs/default.py',
          '--config.model.hidden=(8,)', '--config.rounds.num_rounds=4',
          '--config.rounds.eval_every=2', '--config.algorithm=fedmchain',
          '--sweep=client.lr=[0.02,0.1];seed=[0,1]', *overrides]
  single = subprocess.run(base + [f'--workdir={tmp_path / "one"}'], cwd=root,
                          env=dict(os.environ, JAX_PLATFORMS='cpu'),
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2')
  processes = [subprocess.Popen(
      base + [f'--workdir={tmp_path / "two"}', '--sweep_devices=2',
              '--distributed=explicit',
              f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
              f'--process_id={rank}', '--nosequential_baseline'],
      cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for rank in (0, 1)]
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  assert 'devices' not in outputs[1][0]
  for i in range(4):
    with open(tmp_path / 'one' / f'member_{i}' / 'metrics.jsonl') as f:
      expected = without_times([json.loads(line) for line in f])
    with open(tmp_path / 'two' / f'member_{i}' / 'metrics.jsonl') as f:
      got = without_times([json.loads(line) for line in f])
    for a, b in zip(expected, got):
      for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f'member {i} {key}')


def test_sweep_from_the_config_files_sweep_function(tmp_path):
  import subprocess
  import sys
  from tests.test_launcher import TINY
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  overrides = [f'--config.{k}={v}' for k, v in TINY.items()
               if k != 'model.hidden']
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep',
       '--config=experiments/configs/fedmchain_sweep.py',
       f'--workdir={tmp_path}', '--config.model.hidden=(8,)', *overrides,
       '--nosequential_baseline'],
      cwd=root, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(tmp_path)) == sorted(
      [f'member_{i}' for i in range(6)] +
      ['checkpoints', 'summary.md', 'sweep.json', 'sweep_config.json'])
  assert '| client.lr=0.02 | 3 |' in result.stdout


def test_interrupted_sweep_resumes_to_the_same_results(tmp_path, monkeypatch):
  import contextlib
  import threading
  config = tiny_config(algorithm='fedmchain', **{'rounds.num_rounds': 6,
                                                 'rounds.eval_every': 2,
                                                 'rounds.checkpoint_every': 4})
  grid = {'client.lr': [0.02, 0.1]}
  straight = sweep.run_sweep(config, grid, str(tmp_path / 'straight'),
                             sequential_baseline=False)

  @contextlib.contextmanager
  def ctrl_c_pressed():
    event = threading.Event()
    event.set()
    yield event

  # Ctrl-C during the first block: it ends, is checkpointed (though not a
  # checkpoint round) and the sweep stops, saying where it resumes.
  workdir = str(tmp_path / 'resumed')
  with monkeypatch.context() as patch:
    patch.setattr(train, 'deferred_interrupt', ctrl_c_pressed)
    with pytest.raises(train.Interrupted, match='after round 2;'):
      sweep.run_sweep(config, grid, workdir, sequential_baseline=False)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2']
  assert not os.path.exists(os.path.join(workdir, 'summary.md'))
  # Another grid in the same workdir is refused in one line.
  with pytest.raises(config_checks.ConfigError, match='holds a sweep of '
                     'another config or grid'):
    sweep.run_sweep(config, {'client.lr': [0.05, 0.1]}, workdir,
                    sequential_baseline=False)
  resumed = sweep.run_sweep(config, grid, workdir, sequential_baseline=False)
  for a, b in zip(straight['members'], resumed['members']):
    assert without_times([a['final']]) == without_times([b['final']])
  jax.tree.map(np.testing.assert_array_equal, straight['params'],
               resumed['params'])
  for i in range(2):
    lines = [json.loads(line) for line in open(
        os.path.join(workdir, f'member_{i}', 'metrics.jsonl'))]
    assert [r['round'] for r in lines] == [2, 4, 6]


def test_finished_sweep_extends_to_more_rounds(tmp_path):
  """A finished sweep rerun with more rounds goes on from its last
  checkpoint, to the results of running the longer sweep at once."""
  grid = {'client.lr': [0.02, 0.1]}
  longer = tiny_config(algorithm='fedmchain', **{'rounds.num_rounds': 6,
                                                 'rounds.eval_every': 2})
  straight = sweep.run_sweep(longer, grid, str(tmp_path / 'straight'),
                             sequential_baseline=False)
  shorter = tiny_config(algorithm='fedmchain', **{'rounds.num_rounds': 4,
                                                  'rounds.eval_every': 2})
  workdir = str(tmp_path / 'extended')
  sweep.run_sweep(shorter, grid, workdir, sequential_baseline=False)
  assert sweep.continues(workdir, longer, grid)
  assert not sweep.continues(workdir, longer, {'client.lr': [0.02, 0.2]})
  extended = sweep.run_sweep(longer, grid, workdir, sequential_baseline=False)
  jax.tree.map(np.testing.assert_array_equal, straight['params'],
               extended['params'])
  for i in range(2):
    lines = [json.loads(line) for line in open(
        os.path.join(workdir, f'member_{i}', 'metrics.jsonl'))]
    reference = [json.loads(line) for line in open(
        tmp_path / 'straight' / f'member_{i}' / 'metrics.jsonl')]
    assert without_times(lines) == without_times(reference)
  # Now 6 rounds long: a shorter sweep there is refused in one line, and so
  # is another config.
  assert not sweep.continues(workdir, shorter, grid)
  with pytest.raises(config_checks.ConfigError,
                     match='has run 6 rounds already'):
    sweep.run_sweep(shorter, grid, workdir, sequential_baseline=False)
  other = tiny_config(algorithm='fedmchain', **{'rounds.num_rounds': 8,
                                                'rounds.eval_every': 2,
                                                'client.num_local_steps': 3})
  with pytest.raises(config_checks.ConfigError,
                     match='config.client.num_local_steps differs'):
    sweep.run_sweep(other, grid, workdir, sequential_baseline=False)


def test_a_finished_sweep_is_read_back_without_building_anything(
    tmp_path, monkeypatch, caplog):
  import logging
  config = tiny_config(**{'rounds.num_rounds': 2, 'rounds.eval_every': 2})
  workdir = str(tmp_path / 'sweep')
  first = sweep.run_sweep(config, {'client.lr': [0.02, 0.1]}, workdir,
                          sequential_baseline=False)
  # One seed a setting: the value alone, no spread.
  summary = (tmp_path / 'sweep' / 'summary.md').read_text()
  assert '±' not in summary
  assert f"| {first['members'][0]['final']['eval/accuracy']:.3f} |" in summary
  with monkeypatch.context() as patch, caplog.at_level(logging.INFO):
    patch.setattr(train, 'build_data', lambda config: 1 / 0)
    again = sweep.run_sweep(config, {'client.lr': [0.02, 0.1]}, workdir,
                            sequential_baseline=False)
  assert 'holds this sweep finished (2 rounds); nothing to run.' in (
      caplog.text)
  assert again['members'] == first['members']
  assert again['summary'] == first['summary']
  jax.tree.map(np.testing.assert_array_equal, first['params'],
               again['params'])
  # Another grid is not this sweep: it is refused as before.
  with pytest.raises(config_checks.ConfigError, match='holds a sweep of '
                     'another config or grid'):
    sweep.run_sweep(config, {'client.lr': [0.05, 0.1]}, workdir,
                    sequential_baseline=False)


def test_timing_text_says_what_the_ratio_compares():
  assert sweep.timing_text({
      'members': 8, 'compile_s': 2.0, 'sweep_s': 4.0, 'one_member_s': 0.1,
      'sequential_estimate_s': 0.8, 'speedup': 0.2}) == (
          '8 members: 2.0 s compiling, 4.0 s running; one member alone runs '
          'in 0.10 s, so the members one after another would take 0.8 s: '
          'the sweep is 0.20 times as fast')
