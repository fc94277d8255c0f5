"""Shared test scaffolding: embedded data, a small model and its params."""

import jax

import fedmchain_jax as fmc
from fedmchain_jax.data import synthetic


def synthetic_setup(num_clients, examples_per_client, hidden,
                    missing_modality_rate=0.0, dirichlet_alpha=1.0,
                    init_seed=0, num_test=20):
  """(apply_fn, params, train data on device) for the default modalities."""
  train, test = synthetic.make_federated(
      seed=0, num_clients=num_clients, examples_per_client=examples_per_client,
      num_test=num_test, dirichlet_alpha=dirichlet_alpha,
      missing_modality_rate=missing_modality_rate)
  model = fmc.models.LateFusionClassifier(('strong', 'weak'), hidden, 10)

  def apply_fn(params, features, modality_mask=None, only=None):
    return model.apply({'params': params}, features, modality_mask, only)

  params = model.init(jax.random.key(init_seed),
                      {m: x[:1] for m, x in test.features.items()})['params']
  return apply_fn, params, jax.device_put(train)


def spy_scan_rounds(monkeypatch):
  """Records the K of every `fmc.algorithms.scan_rounds(run_round, K)` call
  (the launcher and harness look it up at run time); returns that list."""
  scanned = []
  scan_rounds = fmc.algorithms.scan_rounds

  def spy(run_round, num_rounds):
    scanned.append(num_rounds)
    return scan_rounds(run_round, num_rounds)

  monkeypatch.setattr(fmc.algorithms, 'scan_rounds', spy)
  return scanned
