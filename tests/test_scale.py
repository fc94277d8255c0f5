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
        optax.sgd(1.0), 6, 10, 16,
        placement=fmc.placement.Placement(chunk_size=chunk_size))
  return fmc.algorithms.fedmchain(
      apply_fn, ('strong', 'weak'), optax.sgd(0.1), optax.sgd(1.0), 3, 10, 16,
      12, placement=fmc.placement.Placement(chunk_size=chunk_size))


@pytest.mark.parametrize('name', ['fedavg', 'fedmchain'])
def test_chunked_rounds_are_bitwise_the_unchunked_round(name):
  apply_fn, params, train = _setup()
  finals = {}
  # 1 runs as 2; 3 leaves a remainder of 1 of C = 10.
  for chunk_size in (None, 1, 2, 3, 5):
    algorithm = _build(name, apply_fn, chunk_size)
    state = algorithm.init(params)
    run = jax.jit(algorithm.run_round,
                  compiler_options=fmc.determinism.compiler_options())
    for _ in range(3):
      state, metrics = run(state, train, jax.random.key(1))
    finals[chunk_size] = (state, metrics)
  reference = finals[None]
  for chunk_size in (1, 2, 3, 5):
    jax.tree.map(np.testing.assert_array_equal, reference, finals[chunk_size])


@pytest.mark.parametrize('name', ['fedavg', 'fedmchain'])
def test_scanned_rounds_are_bitwise_the_rounds_one_by_one(name):
  apply_fn, params, train = _setup()
  options = fmc.determinism.compiler_options()
  algorithm = _build(name, apply_fn, 3)
  key = jax.random.key(1)
  run = jax.jit(algorithm.run_round, compiler_options=options)
  state, each = algorithm.init(params), []
  for _ in range(3):
    state, metrics = run(state, train, key)
    each.append(metrics)
  run_3 = jax.jit(fmc.algorithms.scan_rounds(algorithm.run_round, 3),
                  compiler_options=options)
  scanned, stacked = run_3(algorithm.init(params), train, key)
  assert int(scanned.round) == 3
  jax.tree.map(np.testing.assert_array_equal, state, scanned)
  jax.tree.map(np.testing.assert_array_equal,
               jax.tree.map(lambda *xs: np.stack(xs), *each), stacked)
  # The rounds differ: each drew its own cohort from fold_in(key, round).
  assert not np.array_equal(stacked['train/loss'][0],
                            stacked['train/loss'][1])


@pytest.mark.parametrize('num_rounds', [0, -1, 2.0, True])
def test_scan_rounds_wants_a_positive_integer(num_rounds):
  with pytest.raises(ValueError, match=f'num_rounds={num_rounds!r}: must be '
                     'an integer >= 1'):
    fmc.algorithms.scan_rounds(lambda s, d, k: (s, {}), num_rounds)


@pytest.mark.parametrize('chunk_size', [None, 3])
def test_a_round_gathering_per_client_is_bitwise_the_gathered_cohorts(
    chunk_size):
  apply_fn, params, train = _setup()
  options = fmc.determinism.compiler_options()
  for name in ('fedavg', 'fedmchain'):
    algorithm = _build(name, apply_fn, chunk_size)
    key = jax.random.key(1)

    def gathered(state, data, key, algorithm=algorithm):
      sample_key, _ = fmc.algorithms.base.round_keys(key, state.round)
      cohort = fdata.sample_cohort(sample_key, data, 10,
                                   algorithm.num_local_steps, 16)
      return algorithm.run_cohort(state, cohort, key)

    results = []
    for run in (algorithm.run_round, gathered):
      state = algorithm.init(params)
      run = jax.jit(run, compiler_options=options)
      for _ in range(2):
        state, metrics = run(state, train, key)
      results.append((state, metrics))
    jax.tree.map(np.testing.assert_array_equal, *results)


def test_a_custom_update_gets_batches_of_s_rows_unless_it_steps_them():
  apply_fn, params, train = _setup()
  joint = fmc.client.joint(
      fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1), 6)
  seen = []

  def indexing_update(params, batches, present, key, round_index):
    # An update written against plain [S, B, ...] leaves.
    seen.append(type(batches))
    assert jax.tree.leaves(batches)[0].shape[:2] == (6, 16)
    return joint.update(params, batches, present, key, round_index)

  results = []
  for lazy_batches in (False, True):
    update = (joint if lazy_batches else
              fmc.client.ClientUpdate(indexing_update, 6, lazy_batches=False))
    algorithm = fmc.algorithms.compose(
        update, fmc.uploads.identity(), fmc.aggregators.weighted_mean(),
        optax.sgd(1.0), 10, 16,
        placement=fmc.placement.Placement(chunk_size=3))
    state = algorithm.init(params)
    state, metrics = jax.jit(algorithm.run_round)(state, train,
                                                  jax.random.key(1))
    results.append((state, metrics))
  assert seen == [dict]
  jax.tree.map(np.testing.assert_array_equal, *results)


def test_leaves_outside_the_blocks_are_checked_for_nonfinite_values():
  # Local training hands the blocks over flattened; a client whose only
  # non-finite values lie in a leaf outside every block is still excluded.
  apply_fn, params, train = _setup()
  joint = fmc.client.joint(
      fmc.losses.fused_classification_loss(apply_fn), optax.sgd(0.1), 6)

  def poisoned(params, batches, present, key, round_index):
    trained, metrics = joint.update(params, batches, present, key,
                                    round_index)
    trained = dict(trained, head_weak=jax.tree.map(
        lambda x: x * np.nan, trained['head_weak']))
    return trained, metrics

  blocks = {'strong': (('encoder_strong', 'head_strong'), 'strong')}
  results = []
  for chunk_size in (None, 3):
    algorithm = fmc.algorithms.compose(
        joint._replace(update=poisoned), fmc.uploads.top_fraction(0.5),
        fmc.aggregators.weighted_mean(), optax.sgd(1.0), 10, 16,
        blocks=blocks, placement=fmc.placement.Placement(chunk_size))
    state, metrics = jax.jit(algorithm.run_round)(
        algorithm.init(params), train, jax.random.key(1))
    assert int(metrics['faults/nonfinite']) == 10
    assert int(metrics['clients/participating']) == 0
    jax.tree.map(np.testing.assert_array_equal, state.params, params)
    results.append((state, metrics))
  jax.tree.map(np.testing.assert_array_equal, *results)


@pytest.mark.parametrize('aggregator,error_feedback', [
    ('ssca', True), ('mean', False)])
def test_the_round_folds_the_upload_into_local_training_bitwise(
    monkeypatch, aggregator, error_feedback):
  # On one device without active faults, local training takes the upload's
  # first steps (finite check, zeroing, error feedback) per chunk; otherwise
  # the aggregation takes them over the whole cohort. Some clients send
  # non-finite deltas.
  apply_fn, params, train = _setup()
  options = fmc.determinism.compiler_options()
  prepared_rows = []
  upload = fmc.uploads.top_fraction(0.3, error_feedback, 12)

  def spy(rows, *args):
    prepared_rows.append(rows.shape[0])
    return upload.prepare(rows, *args)

  merge = (fmc.aggregators.ssca() if aggregator == 'ssca' else
           fmc.aggregators.weighted_mean())
  chain = fmc.algorithms.fedmchain(
      apply_fn, ('strong', 'weak'), optax.sgd(0.1), optax.sgd(1.0), 3, 10, 16,
      12, rho=0.3, aggregator=merge, error_feedback=error_feedback)

  def sometimes_nan(params, batches, present, key, round_index):
    trained, metrics = chain.local_update(params, batches, present, key,
                                          round_index)
    poison = jax.random.uniform(jax.random.fold_in(key, 7)) < 0.3
    trained = dict(trained, encoder_weak=jax.tree.map(
        lambda x: x * jax.numpy.where(poison, np.nan, 1.0),
        trained['encoder_weak']))
    return trained, metrics

  key = jax.random.key(3)
  results, excluded = [], []
  for fold in (True, False):
    monkeypatch.setattr(fmc.algorithms.rounds, '_folds',
                        lambda *args, fold=fold: fold)
    # Chunks of 3 of C = 10: the last chunk is padded (the whole cohort at
    # once is the chunked round bitwise, see above).
    algorithm = fmc.algorithms.compose(
        fmc.client.ClientUpdate(sometimes_nan, 6),
        upload._replace(prepare=spy), merge, optax.sgd(1.0), 10, 16,
        blocks=fmc.models.parameter_blocks(('strong', 'weak')),
        placement=fmc.placement.Placement(chunk_size=3))

    def halves(state, key, algorithm=algorithm):
      sample_key, _ = fmc.algorithms.base.round_keys(key, state.round)
      cohort = fdata.sample_cohort(sample_key, train, 10,
                                   algorithm.num_local_steps, 16)
      return algorithm.aggregate(state, cohort,
                                 *algorithm.train_cohort(state, cohort, key),
                                 key)

    del prepared_rows[:]
    state = algorithm.init(params)
    run = jax.jit(halves, compiler_options=options)
    for _ in range(2):
      state, metrics = run(state, key)
      excluded.append(int(metrics['faults/nonfinite']))
    results.append((state, metrics))
    # Per chunk (3 rows) inside local training, or per block over the
    # cohort in the aggregation.
    assert set(prepared_rows) == {3 if fold else 10}
  jax.tree.map(np.testing.assert_array_equal, results[0], results[1])
  assert max(excluded) > 0
  if error_feedback:
    assert float(np.abs(results[0][0].client_states['encoder_weak']).max()) > 0


def test_aggregate_takes_a_deltas_tree_as_a_loop_over_clients_gives_it():
  apply_fn, params, train = _setup()
  algorithm = _build('fedmchain', apply_fn, None)
  state = algorithm.init(params)
  cohort = fdata.sample_cohort(jax.random.key(0), train, 10, 6, 16)
  key = jax.random.key(1)
  train_key = fmc.algorithms.base.round_keys(key, state.round)[1]
  keys = fmc.algorithms.base.client_keys(train_key, cohort.client_ids)
  trained, metrics = jax.vmap(
      algorithm.local_update, in_axes=(None, 0, 0, 0, None))(
          state.params, fdata.cohort_batches(cohort),
          dict(cohort.modality_mask), keys, state.round)
  deltas = jax.tree.map(lambda new, old: new - old, trained, state.params)
  from_tree, _ = jax.jit(algorithm.aggregate)(state, cohort, deltas, metrics,
                                              key)
  whole, _ = jax.jit(algorithm.run_cohort)(state, cohort, key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               from_tree.params, whole.params)


def test_split_blocks_join_to_the_deltas():
  deltas = {'a': {'kernel': np.arange(24.).reshape(2, 3, 4),
                  'bias': np.arange(8.).reshape(2, 4)},
            'b': {'kernel': np.arange(12.).reshape(2, 6)},
            'c': {'bias': np.ones((2, 5))}}
  params = jax.tree.map(lambda x: x[0], deltas)
  # A block naming only keys the params lack is skipped.
  blocks = {'ab': (('a', 'b'), None), 'none': (('z',), None),
            'c': (('c',), None)}
  split = fmc.blocks.split(blocks, params, deltas)
  flats, outside = split
  assert {k: x.shape for k, x in flats.items()} == {'ab': (2, 22),
                                                    'c': (2, 5)}
  assert outside == {}
  # A block is its leaves flattened per client, in tree order.
  np.testing.assert_array_equal(flats['ab'][1, :4], deltas['a']['bias'][1])
  joined = fmc.blocks.join(split, blocks, params)
  jax.tree.map(np.testing.assert_array_equal, joined, deltas)
  _, outside = fmc.blocks.split({'a': (('a',), None)}, params, deltas)
  assert sorted(outside) == ['b', 'c']


def _temp_bytes(fn, *args):
  analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
  if analysis is None:
    pytest.skip('no memory analysis on this backend')
  return analysis.temp_size_in_bytes


def test_chunking_bounds_memory():
  apply_fn, params, train = _setup()
  key = jax.random.key(1)
  sizes, rounds = {}, {}
  for chunk_size in (None, 2):
    algorithm = _build('fedavg', apply_fn, chunk_size)
    state = algorithm.init(params)
    cohort = fdata.sample_cohort(jax.random.key(0), train, 10, 6, 16)
    sizes[chunk_size] = _temp_bytes(algorithm.train_cohort, state, cohort, key)
    rounds[chunk_size] = _temp_bytes(algorithm.run_round, state, train, key)
  assert sizes[2] < sizes[None]
  assert rounds[2] < rounds[None]


def test_a_round_never_holds_the_whole_cohorts_batches():
  apply_fn, params, train = _setup()
  algorithm = _build('fedavg', apply_fn, None)
  state = algorithm.init(params)
  key = jax.random.key(1)

  def gathered(state, data, key):
    cohort = fdata.sample_cohort(key, data, 10, algorithm.num_local_steps, 16)
    return algorithm.run_cohort(state, cohort, key)

  cohort = fdata.sample_cohort(key, train, 10, algorithm.num_local_steps, 16)
  batches = sum(x.nbytes for x in jax.tree.leaves(cohort.features))
  # run_round gathers each step's batches inside local training.
  saved = (_temp_bytes(gathered, state, train, key) -
           _temp_bytes(algorithm.run_round, state, train, key))
  assert saved > batches // 2, (saved, batches)


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
    # Bitwise: parameters, error-feedback residuals and every metric.
    assert report[name]['params'] == 0.0, report
    assert report[name]['residuals'] == 0.0, report
    assert report[name]['metrics'] == [], report
    # Partial sums per device instead: equal to rounding.
    assert report[name]['sharded_reduction'] < 1e-6, report
    # Padding clients (10 -> 16 over 8 devices) change nothing.
    assert report[name]['participating'] == [cohort_size, cohort_size]
    a, b = report[name]['upload_bytes']
    assert a == b
    assert 'spec=P()' in report[name]['sharded']  # Server state replicated.
    if cohort_size % 8:
      # 3 rounds in one lax.scan on the mesh: bitwise the 3 calls.
      assert report[name]['scanned'] == 0.0, report
  if cohort_size % 8:
    # SSCA's agreement and consensus shared out over the devices: bitwise
    # one device's.
    assert report['agreement'] == [], report
    assert report['consensus'] == [], report


def test_fixed_order_sums():
  values = jax.numpy.float32([1e8, 1.0, -1e8, 1.0, 3.0])
  # Halves, zero-padded to 8: ((1e8 + 1) + (-1e8 + 1)) + ((3 + 0) + 0) = 3 in
  # float32, where a left-to-right sum gives 4.
  assert float(fmc.determinism.fixed_order_sum(values)) == 3.0
  assert float(fmc.determinism.fixed_order_sum(values[None], axis=-1)[0]) == 3.0
  np.testing.assert_array_equal(
      fmc.determinism.fixed_order_sum(jax.numpy.arange(12.0).reshape(6, 2)),
      [30.0, 36.0])
  np.testing.assert_array_equal(
      fmc.determinism.fixed_order_sum(jax.numpy.arange(12.0).reshape(2, 6), 1),
      [15.0, 51.0])


def test_pad_cohort_to_a_multiple_and_a_minimum():
  _, _, train = _setup()
  cohort = fdata.sample_cohort(jax.random.key(0), train, 10, 2, 4)
  for multiple, min_size, expected in ((8, 1, 16), (8, 16, 16), (4, 1, 12),
                                       (5, 1, 10), (4, 20, 20)):
    padded = fmc.placement.pad_cohort(cohort, multiple, min_size)
    assert padded.weights.shape == (expected,)
    assert (np.asarray(padded.weights[10:]) == 0).all()
    assert (np.asarray(padded.client_ids[10:]) ==
            fdata.federated.PADDING_ID).all()
