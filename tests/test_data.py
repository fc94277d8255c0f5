"""Tests of the federated data model, partitions, cohort gathering, embedded data."""

import jax
import numpy as np
import pytest

import fedmchain_jax as fmc
from fedmchain_jax import data as fdata
from fedmchain_jax.data import synthetic


def test_dirichlet_partition_is_a_partition():
  labels = np.arange(300) % 10
  parts = fdata.dirichlet_partition(labels, 7, 0.5, np.random.default_rng(0),
                                    min_examples=3)
  assert len(parts) == 7
  everything = np.concatenate(parts)
  np.testing.assert_array_equal(np.sort(everything), np.arange(300))
  assert min(p.size for p in parts) >= 3


def test_dirichlet_small_alpha_skews_labels():
  labels = np.arange(2000) % 10

  def mean_classes(alpha):
    parts = fdata.dirichlet_partition(labels, 20, alpha,
                                      np.random.default_rng(1))
    # Classes holding 90% of a client's examples, averaged over clients.
    counts = []
    for p in parts:
      shares = np.sort(np.bincount(labels[p], minlength=10))[::-1] / p.size
      counts.append(np.searchsorted(np.cumsum(shares), 0.9) + 1)
    return np.mean(counts)

  assert mean_classes(0.1) < 3 < 8 < mean_classes(100.0)


def test_dirichlet_partition_reports_impossible_request():
  with pytest.raises(ValueError, match='cannot give 5 clients'):
    fdata.dirichlet_partition(np.arange(4), 5, 1.0, np.random.default_rng(0))


def test_hold_out_carves_a_share_of_each_client_and_keeps_one():
  parts = [np.arange(0, 10), np.arange(10, 13), np.arange(13, 14)]
  kept, held = fdata.federated.hold_out(parts, 0.3,
                                        np.random.default_rng(0))
  # floor(0.3 n): 3 of 10, 0 of 3 and of 1 (each client keeps one at least).
  assert [len(k) for k in kept] == [7, 3, 1]
  assert len(held) == 3 and set(held) <= set(parts[0])
  everything = np.sort(np.concatenate(kept + [held]))
  np.testing.assert_array_equal(everything, np.arange(14))
  kept, held = fdata.federated.hold_out(parts, 0.0, np.random.default_rng(0))
  assert held.size == 0 and all(np.array_equal(a, b)
                                for a, b in zip(kept, parts))
  with pytest.raises(ValueError, match=r'validation_fraction must be in'):
    fdata.federated.hold_out(parts, 1.0, np.random.default_rng(0))


def test_validation_split_is_disjoint_and_the_test_split_is_not_made(
    monkeypatch):
  kwargs = dict(seed=3, num_clients=6, examples_per_client=20, num_test=50,
                validation_fraction=0.25)
  train, test = synthetic.make_federated(**kwargs)
  calls = []
  make_examples = synthetic.make_examples
  monkeypatch.setattr(synthetic, 'make_examples',
                      lambda *a, **k: calls.append(a[0]) or
                      make_examples(*a, **k))
  same_train, validation = synthetic.make_federated(**kwargs,
                                                    held_out='validation')
  assert calls == [120]  # The training pool only: no test examples drawn.
  # The population is the same whichever split a run evaluates on.
  jax.tree.map(np.testing.assert_array_equal, train, same_train)
  rows = lambda x: {tuple(r) for r in np.asarray(x).reshape(len(x), -1)}
  mask = np.asarray(train.example_mask)
  for m in ('strong', 'weak'):
    train_rows = rows(np.asarray(train.features[m])[mask])
    held = rows(validation.features[m])
    assert not held & train_rows and not held & rows(test.features[m])
  assert validation.labels.size + mask.sum() == 120
  # Every modality is present in validation, as in the test split.
  assert all(np.abs(x).sum(axis=1).min() > 0
             for x in validation.features.values())


def test_modality_mask_keeps_one_modality_per_client():
  rng = np.random.default_rng(0)
  mask = fdata.draw_modality_mask(('a', 'b', 'c'), 4000, 0.5, rng)
  stacked = np.stack([mask['a'], mask['b'], mask['c']], axis=1)
  assert stacked.any(axis=1).all()
  # Draws are per client and modality: about half missing, less the rescue
  # of all-missing clients (1/8 of them get one modality back).
  missing = 1 - stacked.mean()
  assert abs(missing - (0.5 - 1 / 24)) < 0.02
  none_missing = fdata.draw_modality_mask(('a', 'b'), 50, 0.0, rng)
  assert none_missing['a'].all() and none_missing['b'].all()


def test_from_partition_pads_and_zeroes_missing_modalities():
  features = {'a': np.arange(1, 6, dtype=np.float32)[:, None] * np.ones((5, 2)),
              'b': np.ones((5, 3), np.float32)}
  labels = np.array([0, 1, 2, 3, 4])
  partition = [np.array([0, 1, 2]), np.array([4])]
  mask = {'a': np.array([True, True]), 'b': np.array([True, False])}
  packed = fdata.from_partition(features, labels, partition, mask)
  np.testing.assert_array_equal(packed.example_mask,
                                [[True, True, True], [True, False, False]])
  np.testing.assert_array_equal(packed.labels, [[0, 1, 2], [4, 0, 0]])
  np.testing.assert_array_equal(packed.features['a'][1, :, 0], [5, 0, 0])
  assert packed.features['b'][1].sum() == 0  # Client 1 lacks 'b'.
  assert packed.features['b'][0].sum() == 9
  np.testing.assert_array_equal(packed.weights, [3, 1])


def _toy_population():
  # Client i holds examples whose label is 10 * i + j, j < its size.
  sizes = [3, 7, 1, 5]
  labels = np.concatenate([10 * i + np.arange(n) for i, n in enumerate(sizes)])
  partition = np.split(np.arange(labels.size), np.cumsum(sizes)[:-1])
  features = {'x': labels.astype(np.float32)[:, None]}
  return sizes, fdata.from_partition(features, labels, partition)


def test_sample_cohort_gathers_each_clients_own_examples():
  sizes, population = _toy_population()
  cohort = jax.jit(fdata.sample_cohort, static_argnums=(2, 3, 4))(
      jax.random.key(3), population, 3, 2, 4)
  assert cohort.labels.shape == (3, 2, 4)
  assert cohort.features['x'].shape == (3, 2, 4, 1)
  ids = np.asarray(cohort.client_ids)
  assert len(set(ids)) == 3
  for position, client in enumerate(ids):
    labels = np.asarray(cohort.labels[position]).ravel()
    n = sizes[client]
    # Only this client's examples, each used once per pass over its data.
    assert set(labels) <= set(10 * client + np.arange(n))
    first = labels[:min(n, labels.size)]
    assert len(set(first)) == first.size
    np.testing.assert_array_equal(
        np.asarray(cohort.features['x'][position]).ravel(), labels)
  np.testing.assert_array_equal(cohort.weights, np.array(sizes)[ids])
  assert np.asarray(cohort.example_mask).all()


def test_cohorts_are_drawn_uniformly_without_replacement():
  # 2,000 rounds' cohorts of C = 5 from N = 7: no client twice in a cohort
  # (with replacement, a cohort of 5 repeats someone with probability
  # 1 - 7!/(2! 7^5) = 0.85), and each client in 5/7 of them, within 6
  # binomial standard deviations (20.2 cohorts).
  sizes = [2] * 7
  labels = np.arange(14)
  population = jax.device_put(fdata.from_partition(
      {'x': labels.astype(np.float32)[:, None]}, labels,
      np.split(labels, np.cumsum(sizes)[:-1])))
  keys = jax.random.split(jax.random.key(0), 2000)
  ids = np.asarray(jax.jit(jax.vmap(lambda k: fdata.draw_cohort(
      k, population, 5, 1, 2).client_ids))(keys))
  assert ids.min() >= 0 and ids.max() < 7
  assert all(len(set(row)) == 5 for row in ids)
  counts = np.bincount(ids.ravel(), minlength=7)
  expected = 2000 * 5 / 7
  spread = np.sqrt(2000 * (5 / 7) * (2 / 7))
  assert np.all(np.abs(counts - expected) < 6 * spread), counts


def test_a_client_without_examples_draws_only_masked_slots():
  _, population = _toy_population()
  population = population._replace(
      example_mask=population.example_mask.copy())
  population.example_mask[2] = False  # Client 2 holds nothing.
  draw = fdata.draw_cohort(jax.random.key(0), jax.device_put(population), 4,
                           2, 3)
  mask = np.asarray(draw.example_mask)
  for position, client in enumerate(np.asarray(draw.client_ids)):
    assert mask[position].all() == (client != 2)
    assert mask[position].any() == (client != 2)


def test_a_draw_gathers_to_the_sampled_cohort_whole_or_per_client():
  _, population = _toy_population()
  key = jax.random.key(3)
  cohort = fdata.sample_cohort(key, population, 3, 2, 4)
  draw = fdata.draw_cohort(key, population, 3, 2, 4)
  assert draw.examples.shape == (3, 2, 4)
  jax.tree.map(np.testing.assert_array_equal, cohort,
               fdata.gather_cohort(population, draw))
  per_client = jax.vmap(lambda *x: fdata.gather_batches(population, *x))(
      draw.client_ids, draw.examples, draw.example_mask, draw.modality_mask)
  jax.tree.map(np.testing.assert_array_equal, fdata.cohort_batches(cohort),
               per_client)
  # Step by step (what run_round's local training reads).
  lazy = fdata.DrawnBatches(population, draw.client_ids[1], draw.examples[1],
                            draw.example_mask[1],
                            {m: v[1] for m, v in draw.modality_mask.items()})
  assert fmc.client.num_steps_of(lazy) == 2
  for step in range(2):
    jax.tree.map(np.testing.assert_array_equal,
                 fmc.client.step_batch(lazy, step),
                 jax.tree.map(lambda x, s=step: x[1, s],
                              fdata.cohort_batches(cohort)))
  # A padding client reads finite inputs and keeps its padding id and weight.
  padded = fdata.gather_cohort(population,
                               fmc.placement.pad_cohort(draw, 4))
  assert int(padded.client_ids[3]) == fdata.federated.PADDING_ID
  assert float(padded.weights[3]) == 0.0
  assert np.isfinite(np.asarray(padded.features['x'])).all()


def test_synthetic_is_deterministic_and_has_the_requested_shape():
  kwargs = dict(num_clients=6, examples_per_client=20, num_test=50,
                dirichlet_alpha=0.5, missing_modality_rate=0.3)
  a_train, a_test = synthetic.make_federated(seed=4, **kwargs)
  b_train, b_test = synthetic.make_federated(seed=4, **kwargs)
  c_train, _ = synthetic.make_federated(seed=5, **kwargs)
  jax.tree.map(np.testing.assert_array_equal, (a_train, a_test),
               (b_train, b_test))
  assert not np.array_equal(a_train.features['strong'],
                            c_train.features['strong'])
  assert a_train.modalities == ('strong', 'weak')
  assert a_train.labels.shape[0] == 6
  assert int(a_train.example_mask.sum()) == 120
  assert a_test.features['weak'].shape == (50, 32)
  np.testing.assert_array_equal(np.bincount(a_test.labels), [5] * 10)


def test_synthetic_informativeness_controls_how_much_label_a_modality_holds():
  modalities = (synthetic.ModalitySpec('clean', 8, 1.0, 0.0),
                synthetic.ModalitySpec('useless', 8, 0.0, 0.0))
  rng = np.random.default_rng(0)
  features, labels = synthetic.make_examples(400, 4, modalities, 0, rng)
  # Noise-free and always following its class: one point per class.
  for k in range(4):
    rows = features['clean'][labels == k]
    np.testing.assert_allclose(rows, np.broadcast_to(rows[0], rows.shape))
  # Following a random class: its point does not determine the label.
  keys = [tuple(np.round(r, 5)) for r in features['useless']]
  by_point = {}
  for point, label in zip(keys, labels):
    by_point.setdefault(point, set()).add(label)
  assert max(len(v) for v in by_point.values()) > 1


@pytest.mark.parametrize('slots', [1, 5, 320, 511, 512])
def test_slot_order_is_the_stable_argsort_of_the_masked_noise(slots):
  key_noise, key_mask = jax.random.split(jax.random.key(0))
  rows = 64
  noise = jax.random.uniform(key_noise, (rows, slots))
  # Half the rows with repeated values (ties go by slot), as uniforms have.
  coarse = np.floor(np.asarray(noise) * 4) / 4
  noise = np.where(np.arange(rows)[:, None] % 2 == 0, noise, coarse)
  mask = np.array(jax.random.uniform(key_mask, (rows, slots)) < 0.7)
  mask[0] = False  # A client with no examples.
  mask[1] = True
  noise = jax.numpy.asarray(noise, jax.numpy.float32)
  expected = np.argsort(np.where(mask, noise, 2.0), axis=1, kind='stable')
  got = jax.jit(fdata.federated._slot_order)(noise, mask)
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, expected)
  # Up to 511 slots, one sort of packed keys; beyond, the argsort's two.
  def sorts(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'sort':
        yield len(eqn.invars)
      for value in eqn.params.values():
        inner = getattr(value, 'jaxpr', value)
        if hasattr(inner, 'eqns'):
          yield from sorts(inner)

  jaxpr = jax.make_jaxpr(fdata.federated._slot_order)(noise, mask).jaxpr
  assert list(sorts(jaxpr)) == [1 if slots <= 511 else 2]
