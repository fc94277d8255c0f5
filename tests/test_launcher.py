"""End-to-end tests of the runner and the absl launcher on shrunken configs."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import config_checks
from experiments import train
from experiments.configs import default
import fedmchain_jax as fmc
from tests import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = {
    'data.num_clients': 6,
    'data.examples_per_client': 10,
    'data.num_test': 40,
    'model.hidden': (8,),
    'rounds.num_rounds': 2,
    'rounds.cohort_size': 3,
    'rounds.eval_every': 1,
    'rounds.checkpoint_every': 1,
    'client.num_local_steps': 2,
    'client.batch_size': 4,
}


def tiny_config(**overrides):
  config = default.get_config()
  for field, value in {**TINY, **overrides}.items():
    node = config
    *parents, leaf = field.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config


def without_times(records):
  return [{k: v for k, v in r.items() if not k.startswith('time/')}
          for r in records]


def test_metrics_contract(tmp_path):
  records = train.train_and_evaluate(tiny_config(), str(tmp_path))
  on_disk = [json.loads(line)
             for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert on_disk == records
  assert [r['round'] for r in records] == [1, 2]
  for record in records:
    for key in ('eval/accuracy', 'eval/accuracy/strong', 'eval/accuracy/weak',
                'train/loss', 'comm/upload_bytes', 'time/round_s'):
      assert key in record, key
    assert 0 <= record['eval/accuracy'] <= 1
  # Cumulative: 3 clients a round, each sending every float32 parameter.
  # Model: strong/weak encoders 32*8+8, heads 8*10+10 each.
  model_bytes = 4 * 2 * (32 * 8 + 8 + 8 * 10 + 10)
  assert records[0]['comm/upload_bytes'] == 3 * model_bytes
  assert records[1]['comm/upload_bytes'] == 6 * model_bytes
  assert (tmp_path / 'checkpoints').is_dir()
  assert json.loads((tmp_path / 'config.json').read_text())['seed'] == 0


def test_bfloat16_compute_trains_as_well_as_float32(tmp_path):
  # The embedded data's full default run: mixed precision changes the
  # products, not what is learned, stored or sent.
  finals = {}
  for dtype in ('float32', 'bfloat16'):
    config = default.get_config()
    config.algorithm = 'fedmchain'
    config.model.dtype = dtype
    finals[dtype] = train.train_and_evaluate(config,
                                             str(tmp_path / dtype))[-1]
  assert abs(finals['bfloat16']['eval/accuracy'] -
             finals['float32']['eval/accuracy']) <= 0.01
  # float32 values either way (the sparse upload's non-zero count moves).
  assert finals['bfloat16']['comm/upload_bytes'] == pytest.approx(
      finals['float32']['comm/upload_bytes'], rel=0.01)
  checkpointer = fmc.checkpointing.Checkpointer(
      str(tmp_path / 'bfloat16' / 'checkpoints'), 1)
  state = checkpointer.restore(None)['state']
  checkpointer.close()
  assert {leaf.dtype for leaf in jax.tree.leaves(state)} <= {
      np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint32)}


def test_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
  straight = train.train_and_evaluate(
      tiny_config(**{'rounds.num_rounds': 4}), str(tmp_path / 'straight'))
  workdir = str(tmp_path / 'resumed')
  first = train.train_and_evaluate(tiny_config(), workdir)
  assert [r['round'] for r in first] == [1, 2]
  resumed = train.train_and_evaluate(
      tiny_config(**{'rounds.num_rounds': 4}), workdir)
  assert [r['round'] for r in resumed] == [1, 2, 3, 4]
  assert without_times(resumed) == without_times(straight)


def _checkpointed_state(workdir):
  checkpointer = fmc.checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints'), 1)
  state = checkpointer.restore(None)['state']
  checkpointer.close()
  return state


@pytest.mark.parametrize('server', [
    {'algorithm': 'fedopt_adam', 'server.lr': 0.03},
    {'server.momentum': 0.9}])
def test_resume_restores_a_stateful_server_optimizer(tmp_path, server):
  # Adam's moments and step count, or SGD's momentum trace, come back from
  # the checkpoint: a fresh optimizer state on resume changes round 3 on.
  straight = train.train_and_evaluate(
      tiny_config(**{**server, 'rounds.num_rounds': 4}),
      str(tmp_path / 'straight'))
  workdir = str(tmp_path / 'resumed')
  train.train_and_evaluate(tiny_config(**server), workdir)
  halfway = _checkpointed_state(workdir)
  # The optimizer state after 2 rounds is not its initial state.
  fresh = jax.tree.map(np.zeros_like, halfway['opt_state'])
  assert any(np.any(a != b) for a, b in zip(
      jax.tree.leaves(halfway['opt_state']), jax.tree.leaves(fresh)))
  resumed = train.train_and_evaluate(
      tiny_config(**{**server, 'rounds.num_rounds': 4}), workdir)
  assert without_times(resumed) == without_times(straight)
  jax.tree.map(np.testing.assert_array_equal,
               _checkpointed_state(tmp_path / 'straight'),
               _checkpointed_state(workdir))


def test_lost_checkpoint_rolls_metrics_back(tmp_path):
  config = tiny_config(**{'rounds.num_rounds': 4,
                          'rounds.checkpoint_every': 2})
  straight = train.train_and_evaluate(config, str(tmp_path / 'a'))
  workdir = tmp_path / 'b'
  train.train_and_evaluate(config, str(workdir))
  # As if the process died after logging round 4 but before its checkpoint.
  shutil.rmtree(workdir / 'checkpoints' / '4')
  again = train.train_and_evaluate(config, str(workdir))
  assert [r['round'] for r in again] == [1, 2, 3, 4]
  assert without_times(again) == without_times(straight)
  # TensorBoard holds each round once too: rounds 3 and 4 of the first
  # run were dropped at the restart, and the old event file with them.
  events = sorted((workdir / 'tensorboard').iterdir())
  assert len(events) == 1
  accuracy = [(step, value) for path in events for _, step, tag, value in
              fmc.metrics_io.read_event_scalars(str(path))
              if tag == 'eval/accuracy']
  assert accuracy == [(r['round'], pytest.approx(r['eval/accuracy']))
                      for r in again]


def test_same_seed_same_metrics_other_seed_different(tmp_path):
  a = train.train_and_evaluate(tiny_config(), str(tmp_path / 'a'))
  b = train.train_and_evaluate(tiny_config(), str(tmp_path / 'b'))
  c = train.train_and_evaluate(tiny_config(seed=1), str(tmp_path / 'c'))
  assert without_times(a) == without_times(b)
  assert without_times(a) != without_times(c)


@pytest.mark.parametrize('algorithm', ['fedavg', 'fedmchain'])
def test_chunk_size_changes_no_bit_of_a_run(tmp_path, algorithm):
  # Large enough for XLA:CPU to hand the unchunked round's reductions to
  # YNNPACK: without the launcher's compiler options this run differs.
  bigger = {'model.hidden': (64,), 'data.num_clients': 12,
            'data.examples_per_client': 20, 'rounds.cohort_size': 10,
            'client.batch_size': 16, 'client.num_local_steps': 6}
  runs = [train.train_and_evaluate(
      tiny_config(algorithm=algorithm, **bigger,
                  **{'rounds.chunk_size': chunk}),
      str(tmp_path / str(chunk))) for chunk in (0, 3)]
  assert without_times(runs[1]) == without_times(runs[0])
  from tests.test_reliability import _final_params
  step_a, params_a = _final_params(tmp_path / '0')
  step_b, params_b = _final_params(tmp_path / '3')
  assert step_a == step_b == 2
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_rounds_per_call_changes_no_bit_of_a_run(tmp_path, monkeypatch):
  scanned = common.spy_scan_rounds(monkeypatch)
  every = {'algorithm': 'fedmchain', 'rounds.num_rounds': 8,
           'rounds.eval_every': 4, 'rounds.checkpoint_every': 6}
  straight = train.train_and_evaluate(tiny_config(**every),
                                      str(tmp_path / '1'))
  assert not scanned
  # Calls of 3, 1 (evaluated at 4), 2 (checkpointed at 6), 2.
  scanned_run = train.train_and_evaluate(
      tiny_config(**every, **{'rounds.rounds_per_call': 3}),
      str(tmp_path / '3'))
  assert scanned == [3, 2]
  assert [r['round'] for r in scanned_run] == [4, 8]
  assert without_times(scanned_run) == without_times(straight)
  from tests.test_reliability import _final_params
  step_a, params_a = _final_params(tmp_path / '1')
  step_b, params_b = _final_params(tmp_path / '3')
  assert step_a == step_b == 8
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_xla_defaults_on_request_repeatable_and_close_across_chunks(
    tmp_path, monkeypatch):
  # rounds.layout_independent_bits = False compiles with XLA's defaults: a
  # run still repeats bit for bit, and other chunk sizes agree to rounding.
  asked = []
  options = fmc.determinism.compiler_options

  def spy(backend=None, layout_independent=True):
    asked.append(layout_independent)
    return options(backend, layout_independent)

  monkeypatch.setattr(fmc.determinism, 'compiler_options', spy)
  assert options(layout_independent=False) == {}
  assert options('cpu') == fmc.determinism.CPU_OPTIONS
  bigger = {'model.hidden': (64,), 'data.num_clients': 12,
            'data.examples_per_client': 20, 'rounds.cohort_size': 10,
            'client.batch_size': 16, 'client.num_local_steps': 6,
            'rounds.layout_independent_bits': False}
  runs = [train.train_and_evaluate(
      tiny_config(algorithm='fedmchain', **bigger,
                  **{'rounds.chunk_size': chunk}),
      str(tmp_path / name)) for name, chunk in (('a', 0), ('b', 0), ('c', 3))]
  assert asked and not any(asked)
  assert without_times(runs[1]) == without_times(runs[0])
  for record, other in zip(runs[0], runs[2]):
    assert record.keys() == other.keys()
    for key, value in record.items():
      if not key.startswith('time/') and isinstance(value, float):
        assert other[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_agreement_settings_change_no_bit_of_a_run(tmp_path):
  # The CPU default (bit counts, automatic row groups) against float32 and
  # int8 products in 3 and 2 row groups (materialized): SSCA's groups, hence
  # every leaf.
  settings = [('auto', 0, False), ('float32', 3, False), ('int8', 2, True)]
  runs = [train.train_and_evaluate(
      tiny_config(algorithm='fedmchain', **{
          'rounds.agreement_dtype': dtype,
          'rounds.agreement_row_groups': groups,
          'rounds.agreement_materialize': materialize}),
      str(tmp_path / dtype)) for dtype, groups, materialize in settings]
  from tests.test_reliability import _final_params
  _, reference = _final_params(tmp_path / 'auto')
  for (dtype, _, _), run in zip(settings[1:], runs[1:]):
    assert without_times(run) == without_times(runs[0])
    _, params = _final_params(tmp_path / dtype)
    jax.tree.map(np.testing.assert_array_equal, reference, params)


def test_automatic_chunks_only_for_large_cohorts_on_one_cpu_device():
  def chunk(size, cohort_size=64, mesh=None, params=None):
    config = tiny_config(**{'rounds.chunk_size': size})
    config.rounds.cohort_size = cohort_size
    return train.chunk_size_of(config, mesh, params)

  assert jax.default_backend() == 'cpu'
  assert chunk(-1) == train.AUTO_CHUNK
  assert chunk(-1, cohort_size=train.AUTO_CHUNK) is None
  assert chunk(-1, mesh=object()) is None
  assert chunk(0) is None
  assert chunk(5) == 5
  # Sized by the parameters: the reference model's 1.7 MB a client gives
  # chunks of 4, the tiny one's 154 kB 32; powers of two within the range.
  reference = {'w': jax.ShapeDtypeStruct((433_000,), np.float32)}
  tiny = {'a': np.zeros((784, 32), np.float32),
          'b': np.zeros((13_524,), np.float32)}
  assert chunk(-1, params=reference) == 4
  assert chunk(-1, params=tiny) == 32
  assert chunk(-1, cohort_size=32, params=tiny) is None
  assert chunk(7, params=tiny) == 7
  low, high = train.AUTO_CHUNK_RANGE
  assert train.auto_chunk_size({'w': np.zeros(10**8, np.float32)}) == low
  assert train.auto_chunk_size({'w': np.zeros(10, np.float32)}) == high
  assert train.auto_chunk_size({'w': np.zeros(10**6, np.float16)}) == 4
  config_checks.validate(tiny_config(**{'rounds.chunk_size': -1}))  # Valid.


def test_fedprox_runs(tmp_path):
  records = train.train_and_evaluate(
      tiny_config(algorithm='fedprox', **{'fedprox.mu': 0.1}), str(tmp_path))
  assert np.isfinite(records[-1]['train/loss'])


@pytest.mark.parametrize('field, value, message', [
    ('client.lr', -0.1, "config.client.lr=-0.1 is invalid: must be > 0"),
    ('server.lr', 0.0, "config.server.lr=0.0 is invalid: must be > 0"),
    ('rounds.cohort_size', 7,
     'config.rounds.cohort_size=7 is invalid: must be <= data.num_clients (6)'),
    ('algorithm', 'fedsgd', "config.algorithm='fedsgd' is invalid: must be one "
     'of fedavg, fedprox, fedavg_ogm, fedopt_adam, fedopt_yogi, fedmchain, '
     'fedmchain_adam, fedmchain_noreg, fedmchain_mean, fedmchain_ties, joint_ssca, '
     'joint_sparse_mean, fedavg_median, fedavg_trimmed_mean'),
    ('fedmchain.rho', 0.0,
     'config.fedmchain.rho=0.0 is invalid: must be in (0, 1]'),
    ('fedmchain.tau', 1.0,
     'config.fedmchain.tau=1.0 is invalid: must be in [-1, 1)'),
    ('fedmchain.chain_rule', 'random', "config.fedmchain.chain_rule='random' "
     'is invalid: must be one of fixed, rotate'),
    ('fedmchain.max_groups', 0, 'config.fedmchain.max_groups=0 is '
     'invalid: must be an integer >= 1'),
    ('data.name', 'cifar', "config.data.name='cifar' is invalid: must be one "
     'of synthetic, av_digits, uci_har, crema_d'),
    ('data.missing_modality_rate', 1.0,
     'config.data.missing_modality_rate=1.0 is invalid: must be in [0, 1)'),
    ('data.dirichlet_alpha', 0.0,
     'config.data.dirichlet_alpha=0.0 is invalid: must be > 0'),
    ('client.num_local_steps', 0,
     'config.client.num_local_steps=0 is invalid: must be an integer >= 1'),
    ('client.optimizer', 'lbfgs',
     "config.client.optimizer='lbfgs' is invalid: must be one of sgd, "
     'momentum, adam, adagrad, yogi'),
    ('data.synthetic.informativeness', (0.5,),
     'config.data.synthetic.informativeness=(0.5,) is invalid: must be a tuple '
     'with one entry per modality (2 entries)'),
    ('model.hidden', (8, 0), 'config.model.hidden=(8, 0) is invalid: must be a '
     'tuple of integers >= 1 (layer widths)'),
    ('model.dtype', 'float16', "config.model.dtype='float16' is invalid: must "
     'be one of float32, bfloat16'),
    ('model.encoder', 'cnn', "config.model.encoder='cnn' is invalid: must be "
     'one of mlp, conv1d, conv2d'),
    ('rounds.mesh_reduction', 'psum', "config.rounds.mesh_reduction='psum' is "
     'invalid: must be one of replicated, sharded'),
    ('rounds.agreement_dtype', 'float16',
     "config.rounds.agreement_dtype='float16' is invalid: must be one of "
     'auto, int8, float32, bfloat16, bits'),
    ('rounds.agreement_row_groups', -1,
     'config.rounds.agreement_row_groups=-1 is invalid: must be an integer '
     '>= 0'),
    ('rounds.chunk_size', -2, 'config.rounds.chunk_size=-2 is invalid: must be '
     'an integer >= 0 (0: whole cohort) or -1 (automatic)'),
    ('rounds.rounds_per_call', 0, 'config.rounds.rounds_per_call=0 is '
     'invalid: must be an integer >= 1'),
])
def test_validation_names_field_value_and_allowed(field, value, message):
  with pytest.raises(config_checks.ConfigError) as info:
    config_checks.validate(tiny_config(**{field: value}))
  assert str(info.value) == message


def test_chain_order_must_name_the_data_modalities(tmp_path):
  config = tiny_config(algorithm='fedmchain',
                       **{'fedmchain.chain_order': ('weak', 'audio')})
  with pytest.raises(config_checks.ConfigError) as info:
    train.train_and_evaluate(config, str(tmp_path))
  assert str(info.value) == (
      "config.fedmchain.chain_order=('weak', 'audio') is invalid: must name "
      'each data modality once (strong, weak) or be ()')


def _launch(workdir, *overrides):
  flags = [f'--config.{k}={",".join(map(str, v)) if isinstance(v, tuple) else v}'
           for k, v in TINY.items() if k != 'model.hidden']
  command = [sys.executable, '-m', 'experiments.main',
             '--config=experiments/configs/default.py', f'--workdir={workdir}',
             '--config.model.hidden=(8,)', *flags, *overrides]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                        timeout=300)


def test_launcher_end_to_end(tmp_path):
  result = _launch(tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = (tmp_path / 'metrics.jsonl').read_text().splitlines()
  assert [json.loads(line)['round'] for line in lines] == [1, 2]
  # One progress line per evaluation, and no orbax chatter.
  assert result.stderr.count('round 2/2: accuracy') == 1
  assert 'orbax' not in result.stderr.lower()


@pytest.mark.parametrize('override, message', [
    ('--config.client.lr=-0.1',
     'error: config.client.lr=-0.1 is invalid: must be > 0'),
    ('--config.rounds.cohort_size=50',
     'error: config.rounds.cohort_size=50 is invalid: must be <= '
     'data.num_clients (6)'),
])
def test_launcher_rejects_bad_config_in_one_line(tmp_path, override, message):
  result = _launch(tmp_path / 'run', override)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == message
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run' / 'metrics.jsonl').exists()


def test_launcher_rejects_unwritable_workdir(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('not a directory')
  result = _launch(blocker / 'run')
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: --workdir='{blocker / 'run'}' is not a "
                         'writable directory')
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('args, message', [
    (('--config.client.lrr=0.1',),
     'error: --config.client.lrr: the config has no field client.lrr; did '
     'you mean client.lr?'),
    (('--config.clent.lr=0.1',),
     'error: --config.clent.lr: the config has no field clent.lr; did you '
     'mean client.lr?'),
    (('--config=experiments/configs/defualt.py',),
     'error: --config=experiments/configs/defualt.py: no such file; did you '
     'mean experiments/configs/default.py?'),
    (('--nope',), "error: Unknown command line flag 'nope' (see --help)"),
])
def test_command_line_mistakes_get_one_line_and_leave_nothing(tmp_path, args,
                                                              message):
  workdir = tmp_path / 'run'
  command = [sys.executable, '-m', 'experiments.main',
             '--config=experiments/configs/default.py',
             f'--workdir={workdir}', *args]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [message]
  assert not workdir.exists()


@pytest.mark.parametrize('entry', ['experiments.main', 'experiments.sweep'])
def test_help_lists_the_configs_and_main_fields_and_exits_0(entry):
  result = subprocess.run([sys.executable, '-m', entry, '--help'], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert '  --config: ' in out and '  --workdir: ' in out
  for name in os.listdir(os.path.join(ROOT, 'experiments', 'configs')):
    if name.endswith('.py') and name != '__init__.py':
      assert f'experiments/configs/{name}: ' in out, name
  assert '  client.lr = 0.05\n' in out
  assert "  algorithm = 'fedavg' (one of fedavg, fedprox," in out


def test_a_missing_extra_names_the_install_and_leaves_no_workdir(tmp_path):
  workdir = tmp_path / 'run'
  # As without the `data` extra: importing tensorflow_datasets fails.
  script = ('import sys; sys.modules["tensorflow_datasets"] = None\n'
            'from absl import app\n'
            'from experiments import cli, main\n'
            'app.run(main.main, flags_parser=cli.flags_parser("config"))')
  result = subprocess.run(
      [sys.executable, '-c', script,
       '--config=experiments/configs/av_digits_fedavg.py',
       f'--workdir={workdir}'], cwd=ROOT, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "error: config.data.name='av_digits' needs tensorflow_datasets, which "
      "is not installed: pip install -e '.[data]'")
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_absent_raw_files_name_the_setting_and_leave_no_workdir(tmp_path):
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.main',
       '--config=experiments/configs/uci_har_fedavg.py',
       f'--workdir={workdir}', f'--config.data.manual_dir={tmp_path}/raw',
       f'--config.data.data_dir={tmp_path}/tfds'], cwd=ROOT,
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  # The error alone: no TFDS chatter about configs or empty folders.
  assert result.stderr.strip().splitlines() == [
      f"error: config.data.manual_dir='{tmp_path}/raw' is invalid: UCI-HAR "
      f"raw files not found: '{tmp_path}/raw' must hold the unpacked 'UCI "
      "HAR Dataset' folder (train/ and test/ with 'Inertial Signals'; from "
      'https://archive.ics.uci.edu/dataset/240)']
  assert not workdir.exists()
