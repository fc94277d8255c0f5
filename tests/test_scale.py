"""Cohort chunking and sharding the clients axis over a device mesh."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import fedmchain_jax as fmc
from tests import common
from fedmchain_jax import data as fdata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setup():
  return common.synthetic_setup(12, 20, (64,), missing_modality_rate=0.3)


def _build(name, apply_fn, chunk_size):
  if name == 'fedavg':
    return fmc.algorithms.fedavg(
        fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1),
        optax.sgd(1.0), 6, 10, 16, chunk_size=chunk_size)
  return fmc.algorithms.fedmchain(
      apply_fn, ('strong', 'weak'), optax.sgd(0.1), optax.sgd(1.0), 3, 10, 16,
      12, chunk_size=chunk_size)


@pytest.mark.parametrize('name', ['fedavg', 'fedmchain'])
def test_chunked_rounds_equal_the_unchunked_round(name):
  apply_fn, params, train = _setup()
  finals = {}
  for chunk_size in (None, 3, 5):
    algorithm = _build(name, apply_fn, chunk_size)
    state = algorithm.init(params)
    run = jax.jit(algorithm.run_round)
    for _ in range(3):
      state, metrics = run(state, train, jax.random.key(1))
    finals[chunk_size] = (state, metrics)
  reference = finals[None]
  for chunk_size in (3, 5):
    # XLA:CPU's batched matrix products round differently for different
    # batch counts (a chunk of 3 with a remainder of 1), hence 1e-6.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 reference, finals[chunk_size])
  # A chunk that divides C runs the same products: bitwise equal here.
  jax.tree.map(np.testing.assert_array_equal, reference[0].params,
               finals[5][0].params)


def test_chunking_bounds_memory():
  apply_fn, params, train = _setup()
  sizes = {}
  for chunk_size in (None, 2):
    algorithm = _build('fedavg', apply_fn, chunk_size)
    state = algorithm.init(params)
    cohort = fdata.sample_cohort(jax.random.key(0), train, 10, 6, 16)
    compiled = jax.jit(algorithm.train_cohort).lower(
        state, cohort, jax.random.key(1)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
      pytest.skip('no memory analysis on this backend')
    sizes[chunk_size] = analysis.temp_size_in_bytes
  assert sizes[2] < sizes[None]


@pytest.mark.parametrize('cohort_size', [10, 16])
def test_eight_devices_match_one(cohort_size):
  env = dict(os.environ,
             XLA_FLAGS='--xla_force_host_platform_device_count=8',
             JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, 'tests', 'helpers',
                                    'sharded_rounds.py'), str(cohort_size)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['devices'] == 8
  for name in ('fedavg', 'fedmchain'):
    assert report[name]['params'] < 1e-6, report
    assert report[name]['residuals'] < 1e-6, report
    # Padding clients (10 -> 16 over 8 devices) change nothing.
    assert report[name]['participating'] == [cohort_size, cohort_size]
    a, b = report[name]['upload_bytes']
    assert a == b
    assert 'spec=P()' in report[name]['sharded']  # Server state replicated.
