"""The benchmark harness on tiny shapes: its figures are consistent."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import bench

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


def test_local_flops_count_the_chain_and_joint_training():
  params = {'encoder_a': {'kernel': np.zeros((2, 3)), 'bias': np.zeros(3)},
            'head_a': {'kernel': np.zeros((3, 1))}}
  # One modality: W = 2*3 + 3*1 = 9 kernel entries, trained 6 W per
  # example-step, 4 steps, batch 5, 2 clients.
  flops = bench.local_flops(params, 'fedavg', ['a'], 4, 5, 2)
  assert flops == 6 * 9 * 4 * 5 * 2
  assert bench.local_flops(params, 'fedmchain', ['a'], 4, 5, 2) == flops


def _bench(*flags):
  return subprocess.run(
      [sys.executable, '-m', 'experiments.bench', '--workload=tiny',
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
])
def test_bad_flags_end_in_one_line(flag, message):
  process = _bench(flag)
  assert process.returncode != 0
  assert message in process.stderr
  assert not process.stdout.strip()


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
      "unknown section 'everything': allowed are small, big, variants, "
      'parts, middle')
  assert not list(tmp_path.iterdir())
