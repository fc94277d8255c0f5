"""Embedded procedural multimodal data: no download, deterministic given a seed.

Each modality m sees the label only sometimes: with probability
`informativeness[m]` an example's modality-m features are drawn around the
prototype of its true class, otherwise they are noise around zero and carry
no class at all. These events are independent across modalities, so a weak
modality decides the examples on which the strong one is blank: the Bayes
fused accuracy is well above the best single modality (about 0.8 + 0.2 * 0.7
with the defaults and clean enough features, against 0.82 for 'strong' alone).

Features are `prototype[class] + noise_scale * N(0, I)` (prototypes with
N(0, 1) coordinates), followed by a fixed random rotation and a `tanh`, so an encoder has something to learn. A
modality with high informativeness and low noise dominates joint training;
the default pair ('strong', 'weak') sets up that competition.
"""

from typing import NamedTuple, Sequence

import numpy as np

from fedmchain_jax.data import federated


class ModalitySpec(NamedTuple):
  """How one synthetic modality looks.

  Attributes:
    name: the modality's name (a dict key everywhere).
    dim: feature dimension.
    informativeness: probability in [0, 1] that the features show the true
      class; otherwise they show no class (noise around zero).
    noise_scale: standard deviation of the additive Gaussian noise.
  """
  name: str
  dim: int
  informativeness: float
  noise_scale: float


DEFAULT_MODALITIES = (
    ModalitySpec('strong', dim=32, informativeness=0.8, noise_scale=0.5),
    ModalitySpec('weak', dim=32, informativeness=0.7, noise_scale=2.0),
)


def _draw_modality(spec: ModalitySpec, labels: np.ndarray,
                   prototypes: np.ndarray, rotation: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
  shows = rng.random(labels.size) < spec.informativeness
  noise = rng.normal(size=(labels.size, spec.dim))
  raw = np.where(shows[:, None], prototypes[labels], 0.0)
  raw = raw + spec.noise_scale * noise
  # Unit-variance pre-activations keep the tanh out of saturation.
  scale = 1.0 / np.sqrt(1.0 + spec.noise_scale**2)
  return np.tanh(scale * raw @ rotation).astype(np.float32)


def make_examples(num_examples: int, num_classes: int,
                  modalities: Sequence[ModalitySpec], seed: int,
                  rng: np.random.Generator) -> tuple[dict, np.ndarray]:
  """Draws labelled multimodal examples; balanced labels.

  The class prototypes and rotations depend only on `seed` (so train and test
  splits share them); the examples depend on `rng`.

  Returns:
    ({modality: [X, dim] float32}, [X] int32 labels).
  """
  labels = rng.permutation(np.arange(num_examples) % num_classes)
  world = np.random.default_rng([seed, 0x5EED])
  features = {}
  for spec in modalities:
    prototypes = world.normal(size=(num_classes, spec.dim))
    rotation, _ = np.linalg.qr(world.normal(size=(spec.dim, spec.dim)))
    features[spec.name] = _draw_modality(spec, labels, prototypes, rotation,
                                         rng)
  return features, labels.astype(np.int32)


def make_federated(seed: int, num_clients: int, examples_per_client: int,
                   num_test: int, num_classes: int = 10,
                   modalities: Sequence[ModalitySpec] = DEFAULT_MODALITIES,
                   dirichlet_alpha: float = 1.0,
                   missing_modality_rate: float = 0.0,
                   min_examples: int = 2,
                   validation_fraction: float = 0.0,
                   held_out: str = 'test',
                   ) -> tuple[federated.FederatedData, federated.TestData]:
  """Builds the embedded federated dataset and its held-out split.

  Args:
    seed: fixes everything (prototypes, examples, split, missing modalities).
    num_clients: N.
    examples_per_client: mean client size; the pool has N times this many.
    num_test: T, a balanced held-out split with every modality present.
    num_classes: K.
    modalities: one `ModalitySpec` per modality.
    dirichlet_alpha: label skew of the split (small alpha: few classes each).
    missing_modality_rate: per client and modality Bernoulli missing rate.
    min_examples: every client gets at least this many examples.
    validation_fraction: share of each client's examples held out for
      validation (`federated.hold_out`); the rest train.
    held_out: which split to return beside the population: 'test' or
      'validation' (the test split is then not generated).

  Returns:
    (train `FederatedData`, the held-out split as `TestData`), NumPy arrays.
  """
  federated.check_held_out(held_out)
  names = [spec.name for spec in modalities]
  if len(set(names)) != len(names):
    raise ValueError(f'modality names must be distinct, got {names}')
  rng = np.random.default_rng([seed, 1])
  features, labels = make_examples(num_clients * examples_per_client,
                                   num_classes, modalities, seed, rng)
  partition = federated.dirichlet_partition(labels, num_clients,
                                            dirichlet_alpha, rng, min_examples)
  modality_mask = federated.draw_modality_mask(names, num_clients,
                                               missing_modality_rate, rng)
  partition, validation = federated.hold_out(
      partition, validation_fraction, np.random.default_rng([seed, 3]))
  train = federated.from_partition(features, labels, partition, modality_mask)
  if held_out == 'validation':
    return train, federated.held_out_split(features, labels, validation)
  test_features, test_labels = make_examples(
      num_test, num_classes, modalities, seed, np.random.default_rng([seed, 2]))
  return train, federated.TestData(test_features, test_labels)
