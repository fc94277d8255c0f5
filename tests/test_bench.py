"""The benchmark harness on tiny shapes: its figures are consistent."""

import json
import mmap
import time
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fedmchain_jax as fmc
from tests import common

from benchmarks import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = dict(hidden=[8], steps_per_phase=1, batch_size=2, repeats=1)


@pytest.mark.parametrize('algorithm', ['fedavg', 'fedmchain'])
def test_figures_are_consistent(algorithm):
  result = bench.run_benchmark('tiny', algorithm, cohort_size=3,
                               loop_repeats=1, **SMALL)
  assert result['cohort_size'] == 3 and result['local_steps'] == 2
  for field in ('round_ms', 'local_ms', 'aggregate_ms', 'sample_ms',
                'loop_round_ms', 'peak_tflops', 'compile_s'):
    assert result[field] > 0, field
  assert result['rounds_per_s'] == pytest.approx(1e3 / result['round_ms'])
  assert result['client_updates_per_s'] == pytest.approx(
      3 * result['rounds_per_s'])
  assert result['vmap_speedup'] == pytest.approx(
      result['loop_round_ms'] / result['round_ms'])
  assert result['local_share_of_peak'] == pytest.approx(
      result['local_tflops'] / result['peak_tflops'])
  assert result['products_tflops'] > 0
  assert result['local_share_of_products'] == pytest.approx(
      result['local_tflops'] / result['products_tflops'])
  assert result['page_faults_per_round'] >= 0
  for field in ('round_cpu_ms', 'local_cpu_ms', 'aggregate_cpu_ms'):
    assert result[field] >= 0, field
  assert result['aggregate_share'] == pytest.approx(
      result['aggregate_ms'] / result['round_ms'])


def test_rounds_per_call_times_a_scan_of_rounds(monkeypatch):
  scanned = common.spy_scan_rounds(monkeypatch)
  result = bench.run_benchmark('tiny', 'fedmchain', cohort_size=3,
                               loop_baseline=False, breakdown=False,
                               rounds_per_call=4, **SMALL)
  assert scanned == [4] and result['rounds_per_call'] == 4
  assert result['round_ms'] > 0
  assert result['rounds_per_s'] == pytest.approx(1e3 / result['round_ms'])


def test_timed_counts_the_cpu_time_of_busy_work_not_of_waiting():
  def spin():  # 0.05 s of this thread's CPU, however long a busy host
    end = time.thread_time() + 0.05  # takes to give it (CI shares cores).
    while time.thread_time() < end:
      pass
    return jnp.zeros(())

  def sleep():
    time.sleep(0.05)
    return jnp.zeros(())

  seconds, _, cpu = bench.timed(spin, repeats=3, warmup=0)
  assert cpu >= 0.05 and seconds >= 0.05
  seconds, _, cpu = bench.timed(sleep, repeats=3, warmup=0)
  assert seconds >= 0.05 and cpu < 0.2 * seconds


@pytest.mark.skipif(not hasattr(mmap, 'MADV_NOHUGEPAGE'),
                    reason='needs Linux madvise')
def test_timed_counts_the_page_faults_of_fresh_memory():
  size = 16 * 2**20
  pages = size // mmap.PAGESIZE

  def touch():  # Every page of a fresh mapping written once.
    memory = mmap.mmap(-1, size)
    memory.madvise(mmap.MADV_NOHUGEPAGE)
    memory[::mmap.PAGESIZE] = b'\1' * pages
    memory.close()
    return jnp.zeros(())

  seconds, faults, _ = bench.timed(touch, repeats=3, warmup=1)
  assert seconds > 0
  assert pages <= faults < 2 * pages


def test_local_flops_count_the_chain_and_joint_training():
  params = {'encoder_a': {'Dense_0': {'kernel': np.zeros((2, 3)),
                                      'bias': np.zeros(3)}},
            'head_a': {'kernel': np.zeros((3, 1))}}
  # One modality: the data layer (2*3 entries) costs 4 W per example-step,
  # the head (3*1) 6 W; 4 steps, batch 5, 2 clients.
  flops = bench.local_flops(params, 'fedavg', ['a'], 4, 5, 2)
  assert flops == (4 * 6 + 6 * 3) * 4 * 5 * 2
  assert bench.local_flops(params, 'fedmchain', ['a'], 4, 5, 2) == flops
  # Without encoder layers the head reads the data.
  del params['encoder_a']
  assert bench.local_flops(params, 'fedavg', ['a'], 1, 1, 1) == 4 * 3


@pytest.mark.parametrize('algorithm,regularizer,lam', [
    ('fedavg', 'boost', 1.0), ('fedmchain', 'boost', 1.0),
    ('fedmchain', 'reweight', 0.5), ('fedmchain', 'reweight', 0.0),
    ('fedmchain_noreg', 'boost', 0.0)])
@pytest.mark.parametrize('hidden', [(24, 16), ()])
def test_local_flops_match_what_xla_counts(algorithm, regularizer, lam,
                                           hidden):
  # XLA's cost analysis of one client's local update (one step a phase, so
  # no loop hides its body): what one more example adds to each step is the
  # products local_flops counts, plus a few elementwise FLOPs (ReLU, bias,
  # softmax) that it leaves out.
  modalities = ('audio', 'image')
  model = fmc.models.LateFusionClassifier(modalities, hidden, 10)
  shapes = {'audio': (12, 10), 'image': (16, 16)}

  def apply_fn(params, features, modality_mask=None, only=None):
    return model.apply({'params': params}, features, modality_mask, only)

  def xla_flops(batch_size):
    steps = len(modalities)
    batches = {
        'features': {m: jnp.ones((steps, batch_size) + shape)
                     for m, shape in shapes.items()},
        'label': jnp.zeros((steps, batch_size), jnp.int32),
        'mask': jnp.ones((steps, batch_size), bool),
        'modality_mask': {m: jnp.ones(steps, bool) for m in modalities}}
    if algorithm == 'fedavg':
      update = fmc.client.joint(
          fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1),
          steps).update
    else:
      update = fmc.client.chain(
          apply_fn, modalities, optax.sgd(0.1), 1, [modalities],
          fmc.client.Regularizer(regularizer, lam=lam)).update
    present = {m: jnp.array(True) for m in modalities}
    cost = jax.jit(lambda p, b: update(p, b, present, jax.random.key(0), 0)
                   ).lower(params, batches).compile().cost_analysis()
    return (cost[0] if isinstance(cost, list) else cost)['flops']

  params = model.init(jax.random.key(0), {
      m: jnp.ones((1,) + shape) for m, shape in shapes.items()})['params']
  per_example = bench.local_flops(params, algorithm, modalities, 1, 1, 1,
                                  regularizer, lam)
  measured = (xla_flops(48) - xla_flops(16)) / 32
  assert per_example <= measured <= 1.1 * per_example, (per_example,
                                                        measured)


@pytest.mark.parametrize('hidden', [(24, 16), ()])
def test_products_are_joint_trainings_products_of_one_step(hidden):
  # Every kernel in model order, the data layer without an input gradient;
  # the FLOPs per call are a joint step's (`local_flops` of FedAvg) for
  # width clients, and what XLA counts in the compiled products.
  modalities = ('audio', 'image')
  model = fmc.models.LateFusionClassifier(modalities, hidden, 10)
  params = model.init(jax.random.key(0), {
      'audio': jnp.ones((1, 12)), 'image': jnp.ones((1, 4, 4))})['params']
  widths = [12, *hidden, 10]
  assert bench.product_shapes(params, modalities)[:len(widths) - 1] == [
      (k, n, i > 0) for i, (k, n) in enumerate(zip(widths, widths[1:]))]
  assert bench.product_shapes(params, modalities)[-1] == (
      (hidden or (16,))[-1], 10, bool(hidden))
  width, batch_size = 3, 5
  rate, flops = bench.products_flops(params, modalities, width, batch_size,
                                     repeats=1)
  assert rate > 0
  # FedAvg trains every block in each of its M steps (one step a phase).
  assert flops == bench.local_flops(params, 'fedavg', modalities, 1,
                                    batch_size, width) / len(modalities)
  shapes = bench.product_shapes(params, modalities)
  operands = [(jnp.ones((width, batch_size, k)), jnp.ones((width, k, n)),
               jnp.ones((width, batch_size, n))) for k, n, _ in shapes]
  cost = jax.jit(lambda o: bench.step_products(o, shapes)).lower(
      operands).compile().cost_analysis()
  assert (cost[0] if isinstance(cost, list) else cost)['flops'] == (
      pytest.approx(flops))


def _bench(*flags):
  return subprocess.run(
      [sys.executable, '-m', 'benchmarks.bench', '--workload=tiny',
       '--hidden=8', '--steps_per_phase=1', '--batch_size=2', '--repeats=1',
       '--noloop_baseline', '--nobreakdown', '--json', *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_lists_run_in_one_process_one_json_line_each():
  process = _bench('--algorithm=fedavg', '--cohort_size=2,3')
  assert process.returncode == 0, process.stderr[-2000:]
  lines = [json.loads(line) for line in process.stdout.splitlines()]
  assert [r['cohort_size'] for r in lines] == [2, 3]
  assert all('local_ms' not in r and r['round_ms'] > 0 for r in lines)


@pytest.mark.parametrize('flag,message', [
    ('--algorithm=fedavg,nope', '--algorithm nope is unknown'),
    ('--cohort_size=0', '--cohort_size=0 must be positive integers'),
    ('--rho=1.5', '--rho=1.5 is invalid: must be in (0, 1]'),
    ('--repeats=0', '--repeats=0: 0 is not a positive integer'),
])
def test_bad_flags_end_in_one_line(flag, message):
  process = _bench(flag)
  assert process.returncode != 0
  assert message in process.stderr
  assert not process.stdout.strip()


GOOD = dict(workload='tiny', algorithms=['fedmchain', 'fedavg'], hidden=[],
            cohort_sizes=[], steps_per_phase=5, batch_size=32, chunk_size=-1,
            rho=0.1)


@pytest.mark.parametrize('change,message', [
    (dict(hidden=['abc']), '--hidden=abc must be positive integers'),
    (dict(hidden=['8', '0']), '--hidden=8,0 must be positive integers'),
    (dict(cohort_sizes=['64', '-1']),
     '--cohort_size=64,-1 must be positive integers'),
    (dict(chunk_size=-2), '--chunk_size=-2 is invalid: must be an integer >= 0'),
    (dict(rho=0.0), '--rho=0.0 is invalid: must be in (0, 1]'),
    (dict(rho=float('nan')), '--rho=nan is invalid: must be a finite number'),
    (dict(batch_size=0), '--batch_size=0 is invalid: must be an integer >= 1'),
    (dict(steps_per_phase=0),
     '--steps_per_phase=0 is invalid: must be an integer >= 1'),
    (dict(algorithms=['fedavg', 'nope']), '--algorithm nope is unknown'),
    (dict(reg_lambda=-1.0), '--reg_lambda=-1.0 is invalid: must be >= 0'),
])
def test_settings_are_checked_before_any_run(change, message):
  with pytest.raises(bench.app.UsageError) as error:
    bench.check_settings(**dict(GOOD, **change))
  assert str(error.value).startswith(message)
  assert '\n' not in str(error.value)


def test_good_settings_pass_the_check():
  assert bench.check_settings(**GOOD) == (None, [None])
  assert bench.check_settings(**dict(GOOD, hidden=['16', '8'],
                                     cohort_sizes=['2', '3'])) == (
                                         [16, 8], [2, 3])


def test_reg_lambda_is_the_one_the_algorithm_applies():
  # The FLOP count and the JSON take the weight the round uses: the
  # fedmchain_noreg preset overrides --reg_lambda with 0.
  config = bench.make_config('tiny', 'fedmchain', (8,), 2, 1, 2, 0, 0.1,
                             reg_lambda=0.5)
  assert bench.registry.fedmchain_setting(config, 'reg_lambda') == 0.5
  config.algorithm = 'fedmchain_noreg'
  assert bench.registry.fedmchain_setting(config, 'reg_lambda') == 0.0
  config.algorithm = 'fedmchain_ties'
  assert bench.registry.fedmchain_setting(config, 'tau') == -2.0
  assert bench.registry.fedmchain_setting(config, 'reg_lambda') == 0.5


def test_aggregation_parts_forms_are_exact_and_selectable():
  # The in-round form (dense values and thresholds) in 1, 2, 4 row groups,
  # fused and materialized, and the bit counts, each against float32.
  process = subprocess.run(
      [sys.executable, '-m', 'benchmarks.aggregation_parts',
       '--cohort_size=6', '--block_size=700', '--repeats=1',
       '--only=int8_threshold,bits'],
      cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
      text=True, timeout=300)
  assert process.returncode == 0, process.stderr[-2000:]
  result = json.loads(process.stdout.strip().splitlines()[-1])
  timed = sorted(k[:-3] for k in result if k.endswith('_ms'))
  assert timed == sorted(
      [f'agreement_int8_threshold_groups_{g}{s}'
       for g in (1, 2, 4) for s in ('', '_materialized')] +
      ['agreement_bits', 'agreement_bits_groups_4']), timed
  assert all(result[f'{name}_exact'] is True for name in timed), result


def test_gpu_script_refuses_an_unknown_section_before_running_anything(
    tmp_path):
  process = subprocess.run(
      ['bash', os.path.join(ROOT, 'benchmarks', 'gpu.sh'), str(tmp_path),
       'small', 'everything'], capture_output=True, text=True, timeout=60)
  assert process.returncode == 2
  assert process.stderr.strip() == (
      "unknown section 'everything': allowed are small, big, bf16, sweep, "
      'huge, variants, parts, middle')
  assert not list(tmp_path.iterdir())


def test_report_renders_a_device_run_and_reads_its_targets(tmp_path):
  def round_row(algorithm, size, round_ms, **extra):
    return {'algorithm': algorithm, 'workload': 'reference',
            'cohort_size': size, 'round_ms': round_ms, 'device': 'H100',
            'jax': '0.11.2', 'python': '3.12.3', 'commit': 'abc1234',
            'backend': 'gpu', **extra}
  device = [
      round_row('fedmchain', 4096, 58.0, local_share_of_peak=0.1),
      round_row('fedavg', 4096, 61.5, local_share_of_peak=0.3,
                dtype='bfloat16'),
      {'algorithm': 'fedavg', 'cohort_size': 100_000, 'error': 'OOM'},
      {'kind': 'sweep', 'members': 8, 'cohort_size': 64, 'rounds': 100,
       'sweep_s': 2.0, 'one_member_s': 1.5, 'sequential_estimate_s': 12.0,
       'speedup': 6.0, 'device': 'H100', 'commit': 'abc1234'}]
  cpu = [{'workload': 'reference', 'algorithm': 'fedavg', 'cohort_size': 64,
          'round_ms': 700.0, 'machine': 'x86_64', 'cpu_count': 2,
          'python': '3.11', 'jax': '0.10', 'backend': 'cpu'}]
  paths = {}
  for name, rows in (('device', device), ('cpu', cpu)):
    paths[name] = tmp_path / f'{name}.jsonl'
    paths[name].write_text(''.join(json.dumps(r) + '\n' for r in rows))
  out = tmp_path / 'RESULTS.md'
  process = subprocess.run(
      [sys.executable, '-m', 'benchmarks.report', f'--runs={paths["cpu"]}',
       f'--device_runs={paths["device"]}', '--device_date=2026-12-06',
       f'--out={out}'], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert process.returncode == 0, process.stderr[-2000:]
  text = out.read_text()
  assert 'NVIDIA H200 (2026-11-28' not in text  # The recorded rows replaced.
  targets = {line.split(' | ')[0].lstrip('| '): line
             for line in text.splitlines() if 'H100 (2026-12-06)' in line}
  assert targets['FedMChain round at C = 4,096 <= 60 ms'].endswith(
      '58.0 ms | met |')
  assert targets['FedAvg round at C = 4,096 <= 50 ms'].endswith(
      'not measured | not measured |')  # Only a bfloat16 row.
  assert targets['local training at C = 4,096 >= 25% of the matrix peak in '
                 'its dtype'].endswith('30.0% (fedavg, bfloat16) | met |')
  assert targets['8-member sweep >= 4x faster than 8 single runs'].endswith(
      '6.0x (8 members) | met |')
  assert targets['100,000-client tiny round completes'].endswith(
      'not measured | not measured |')
  assert '| fedavg | | 100,000 | | | | failed: OOM |' in text
