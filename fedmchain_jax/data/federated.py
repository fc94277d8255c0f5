"""Device-resident federated data, client partitions and in-jit cohort gathering.

A population of N clients is stored as padded arrays with a leading clients
axis: every client's examples are packed at the front of an [E] slot row and
`example_mask` marks which slots are real. A cohort is drawn from it inside
the jitted round (`draw_cohort`); its batches are gathered either whole, as
a pytree of [C, S, B, ...] leaves (`sample_cohort`), or step by step inside
local training (`DrawnBatches`, what `run_round` does).
"""

from typing import Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedmchain_jax.types import Array, PRNGKey

# The client id of padding clients: beyond any real population.
PADDING_ID = np.iinfo(np.int32).max


class FederatedData(NamedTuple):
  """A padded population of clients.

  Attributes:
    features: {modality: [N, E, ...]}; a modality a client lacks is all zeros.
    labels: [N, E] int32.
    example_mask: [N, E] bool, True for real examples (packed first).
    modality_mask: {modality: [N] bool}, True where the client holds it.
    weights: [N] float32 aggregation weights (by default the example counts).
  """
  features: Mapping[str, Array]
  labels: Array
  example_mask: Array
  modality_mask: Mapping[str, Array]
  weights: Array

  @property
  def num_clients(self) -> int:
    return self.labels.shape[0]

  @property
  def modalities(self) -> tuple[str, ...]:
    return tuple(sorted(self.features))


class Cohort(NamedTuple):
  """The clients of one round with their local batches.

  Attributes:
    client_ids: [C] int32 population indices (used to derive client keys and
      to gather/scatter per-client state).
    features: {modality: [C, S, B, ...]}.
    labels: [C, S, B] int32.
    example_mask: [C, S, B] bool.
    modality_mask: {modality: [C] bool}.
    weights: [C] float32; 0 for a padding client, which then changes nothing.
  """
  client_ids: Array
  features: Mapping[str, Array]
  labels: Array
  example_mask: Array
  modality_mask: Mapping[str, Array]
  weights: Array


class TestData(NamedTuple):
  """A centralized held-out split: {modality: [T, ...]} features, [T] labels."""
  features: Mapping[str, Array]
  labels: Array


class DataError(ValueError):
  """Data that cannot be trained on; the message says what is wrong."""


def validate(data: FederatedData, test: TestData, num_classes: int,
             allow_empty_clients: bool = False) -> None:
  """Checks a population and its test split before training.

  Args:
    data: the population.
    test: its held-out split.
    num_classes: K; labels must lie in [0, K).
    allow_empty_clients: accept clients without examples as long as their
      weight is 0 (they are then drawn like any client and change nothing,
      as padding clients do); by default they are an error, since a
      partition that leaves clients empty is usually a mistake.

  Raises:
    DataError: labels outside [0, num_classes), modalities whose shapes
      differ between train and test or across leaves, a modality no client
      holds, a client without examples (or, with allow_empty_clients, one
      without examples but with weight), or non-finite features.
  """
  modalities = sorted(data.features)
  if sorted(test.features) != modalities:
    raise DataError(f'train modalities {modalities} differ from test '
                    f'modalities {sorted(test.features)}')
  if sorted(data.modality_mask) != modalities:
    raise DataError(f'modality_mask names {sorted(data.modality_mask)}, '
                    f'the features {modalities}')
  shape = np.shape(data.labels)
  for m in modalities:
    train_shape = np.shape(data.features[m])
    if train_shape[:2] != shape:
      raise DataError(f"modality '{m}' has leading shape {train_shape[:2]}; "
                      f'the labels have {shape} (clients, examples)')
    if np.shape(test.features[m])[1:] != train_shape[2:]:
      raise DataError(f"modality '{m}' has example shape {train_shape[2:]} in "
                      f'train but {np.shape(test.features[m])[1:]} in test')
    if not np.all(np.isfinite(data.features[m])):
      raise DataError(f"modality '{m}' has non-finite train features")
    if not np.any(data.modality_mask[m]):
      raise DataError(f"modality '{m}' is present in no client")
  mask = np.asarray(data.example_mask)
  for name, labels in (('train', np.asarray(data.labels)[mask]),
                       ('test', np.asarray(test.labels))):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise DataError(f'{name} labels span [{labels.min()}, {labels.max()}]; '
                      f'allowed are 0 to {num_classes - 1}')
  empty = np.flatnonzero(mask.sum(axis=1) == 0)
  if allow_empty_clients:
    empty = empty[np.asarray(data.weights)[empty] != 0]
    if empty.size:
      raise DataError(f'{empty.size} client(s) hold no examples but have a '
                      f'non-zero weight (first: client {empty[0]}); give '
                      'empty clients weight 0')
  elif empty.size:
    raise DataError(f'{empty.size} client(s) hold no examples (first: client '
                    f'{empty[0]}); pass allow_empty_clients=True to keep '
                    'them with weight 0')


def client_batches(cohort: Cohort, client: int) -> dict:
  """The local batches of one cohort member, leaves [S, B, ...] (for loops)."""
  return jax.tree.map(lambda x: x[client], cohort_batches(cohort))


def cohort_batches(cohort: Cohort) -> dict:
  """Arranges a cohort as per-step batch dicts with leaves [C, S, B, ...].

  The modality mask is per client, so it is broadcast over the step axis to
  leaves [C, S]; a `lax.scan` over steps then sees it as a scalar per client.
  """
  num_steps = cohort.labels.shape[1]
  return {
      'features': dict(cohort.features),
      'label': cohort.labels,
      'mask': cohort.example_mask,
      'modality_mask': {
          m: jnp.broadcast_to(v[:, None], (v.shape[0], num_steps))
          for m, v in cohort.modality_mask.items()
      },
  }


class CohortDraw(NamedTuple):
  """A sampled cohort before its batches are gathered (`gather_cohort`).

  Attributes:
    client_ids: [C] int32 population indices (`PADDING_ID` for padding).
    examples: [C, S, B] int32 example slots of each client's row.
    example_mask: [C, S, B] bool.
    modality_mask: {modality: [C] bool}.
    weights: [C] float32.
  """
  client_ids: Array
  examples: Array
  example_mask: Array
  modality_mask: Mapping[str, Array]
  weights: Array


# Rows of at most this many example slots are ordered by one sort of packed
# 32-bit keys (`_slot_order`).
_PACKED_ORDER_MAX_SLOTS = 511


def _slot_order(noise: Array, mask: Array) -> Array:
  """`argsort(where(mask, noise, 2.0), axis=1, stable=True)`, bit for bit.

  Each row's real slots (mask True) in increasing `noise`, ties by slot,
  then its padding slots in order. `noise` holds float32 uniforms in [0, 1)
  as `jax.random.uniform` draws them: multiples of 2^-23. With E <=
  `_PACKED_ORDER_MAX_SLOTS` slots each entry is then one uint32 key, (noise
  x 2^23, or 2^23 for padding) x E + slot, and a plain sort of the keys
  gives the order, several times faster than the stable two-operand
  argsort on CPU (benchmarks/RESULTS.md). Longer rows, or other dtypes,
  take the argsort.

  Args:
    noise: [C, E] float, in [0, 1).
    mask: [C, E] bool.

  Returns:
    [C, E] int32 slot indices.
  """
  slots = noise.shape[1]
  if noise.dtype != jnp.float32 or slots > _PACKED_ORDER_MAX_SLOTS:
    return jnp.argsort(jnp.where(mask, noise, 2.0), axis=1).astype(jnp.int32)
  # (2^23 + 1) E <= 2^32 for E <= 511: no key overflows.
  rank = jnp.where(mask, (noise * 2.0**23).astype(jnp.uint32),
                   jnp.uint32(2**23))
  keys = rank * jnp.uint32(slots) + jnp.arange(slots, dtype=jnp.uint32)
  return (jnp.sort(keys, axis=1) % jnp.uint32(slots)).astype(jnp.int32)


def draw_cohort(key: PRNGKey, data: FederatedData, cohort_size: int,
                num_steps: int, batch_size: int) -> CohortDraw:
  """Samples a cohort and its example slots; traceable, static shapes.

  Clients are drawn uniformly without replacement. Each client walks through
  its own examples in a fresh random order and wraps around when it runs out
  (epochs without replacement), so every one of its S * B slots holds a real
  example; a client with no examples gets an all-False mask.

  Args:
    key: PRNG key for this round's sampling.
    data: the population, leaves [N, E, ...].
    cohort_size: C.
    num_steps: S.
    batch_size: B.

  Returns:
    A `CohortDraw`; `gather_cohort` (or, per client, `gather_batches`) reads
    its examples.
  """
  num_clients, slots = data.labels.shape
  client_key, order_key = jax.random.split(key)
  client_ids = jax.random.choice(
      client_key, num_clients, (cohort_size,), replace=False).astype(jnp.int32)
  mask = data.example_mask[client_ids]  # [C, E]
  counts = mask.sum(axis=1)
  # A random order of each client's real examples, padding slots last.
  # Per client from its id, so the order does not depend on its cohort
  # position; element j of a row does not depend on the row's length (JAX's
  # partitionable threefry), so padding the example axis changes nothing.
  noise = jax.vmap(lambda i: jax.random.uniform(
      jax.random.fold_in(order_key, i), (slots,)))(client_ids)
  order = _slot_order(noise, mask)
  position = jnp.arange(num_steps * batch_size)
  index = jnp.take_along_axis(
      order, position[None, :] % jnp.maximum(counts, 1)[:, None], axis=1)
  shape = (cohort_size, num_steps, batch_size)
  return CohortDraw(
      client_ids=client_ids,
      examples=index.reshape(shape).astype(jnp.int32),
      example_mask=jnp.broadcast_to((counts > 0)[:, None, None], shape),
      modality_mask={m: v[client_ids] for m, v in data.modality_mask.items()},
      weights=data.weights[client_ids],
  )


class DrawnBatches(NamedTuple):
  """One drawn client's batches, read from the population step by step.

  Local training takes it wherever it takes a batches dict (`client.
  step_batch` reads step s as `gather_batches(...)` would hold it at s), so
  inside a vmapped round each step gathers [C, B, ...] into a buffer the
  step loop reuses: the cohort's [C, S, B, ...] batches are never written.
  """
  data: FederatedData
  client_id: Array
  examples: Array
  example_mask: Array
  present: Mapping[str, Array]

  @property
  def num_steps(self) -> int:
    return self.examples.shape[0]

  def step(self, index) -> dict:
    """The batch of step `index` (an int, or a slice for several)."""
    row = jnp.minimum(self.client_id, self.data.labels.shape[0] - 1)
    examples = self.examples[index]
    return {
        'features': {m: jnp.asarray(x)[row, examples]
                     for m, x in self.data.features.items()},
        'label': jnp.asarray(self.data.labels)[row, examples],
        'mask': self.example_mask[index],
        'modality_mask': dict(self.present),
    }


def gather_batches(data: FederatedData, client_id: Array, examples: Array,
                   example_mask: Array, present: Mapping[str, Array]) -> dict:
  """One drawn client's batches as `cohort_batches` lays out a row of them.

  Args:
    data: the population.
    client_id: [] int32 (`PADDING_ID` reads the last client: any finite
      inputs do for a padding client).
    examples: [S, B] int32 slots; example_mask: [S, B] bool.
    present: {modality: [] bool}.

  Returns:
    {'features': {m: [S, B, ...]}, 'label': [S, B], 'mask': [S, B],
     'modality_mask': {m: [S]}}; vmap it over a draw's clients.
  """
  batches = DrawnBatches(data, client_id, examples, example_mask,
                         present).step(slice(None))
  num_steps = examples.shape[0]
  batches['modality_mask'] = {m: jnp.broadcast_to(v, (num_steps,))
                              for m, v in present.items()}
  return batches


def gather_cohort(data: FederatedData, draw: CohortDraw) -> Cohort:
  """The `Cohort` of a draw: its examples gathered, leaves [C, S, B, ...]."""
  batches = jax.vmap(lambda *x: DrawnBatches(data, *x, {}).step(slice(None)))(
      draw.client_ids, draw.examples, draw.example_mask)
  return Cohort(
      client_ids=draw.client_ids,
      features=batches['features'],
      labels=batches['label'],
      example_mask=draw.example_mask,
      modality_mask=dict(draw.modality_mask),
      weights=draw.weights,
  )


def sample_cohort(key: PRNGKey, data: FederatedData, cohort_size: int,
                  num_steps: int, batch_size: int) -> Cohort:
  """`gather_cohort(data, draw_cohort(...))`: a cohort with its batches.

  Returns:
    A `Cohort` with leaves [C, S, B, ...].
  """
  return gather_cohort(data, draw_cohort(key, data, cohort_size, num_steps,
                                         batch_size))


# ---------------------------------------------------------------------------
# Host-side construction (NumPy, run once before training).
# ---------------------------------------------------------------------------


def dirichlet_partition(labels: np.ndarray, num_clients: int, alpha: float,
                        rng: np.random.Generator, min_examples: int = 1,
                        max_tries: int = 1000) -> list[np.ndarray]:
  """Splits example indices over clients with Dirichlet(alpha) label skew.

  For every class k, proportions p_k ~ Dirichlet(alpha * 1_N) decide which
  share of class k's examples each client receives. Small alpha gives each
  client few classes; large alpha approaches an IID split. Draws are repeated
  until every client holds at least `min_examples` examples.

  Returns:
    A list of N index arrays into `labels`.
  """
  if labels.size < num_clients * min_examples:
    raise ValueError(
        f'cannot give {num_clients} clients {min_examples} example(s) each '
        f'from {labels.size} examples')
  classes = np.unique(labels)
  for _ in range(max_tries):
    parts = [[] for _ in range(num_clients)]
    for k in classes:
      members = rng.permutation(np.flatnonzero(labels == k))
      shares = rng.dirichlet(np.full(num_clients, alpha))
      cuts = (np.cumsum(shares)[:-1] * members.size).astype(int)
      for client, chunk in enumerate(np.split(members, cuts)):
        parts[client].append(chunk)
    parts = [np.sort(np.concatenate(p)) for p in parts]
    if min(p.size for p in parts) >= min_examples:
      return parts
  raise ValueError(
      f'Dirichlet(alpha={alpha}) split left a client with fewer than '
      f'{min_examples} examples in {max_tries} draws; raise alpha or the '
      'number of examples per client')


HELD_OUT = ('test', 'validation')


def check_held_out(held_out: str) -> None:
  """ValueError unless `held_out` names a split a loader can return."""
  if held_out not in HELD_OUT:
    raise ValueError(f'held_out must be one of {HELD_OUT}, got '
                     f'{held_out!r}')


def hold_out(partition: Sequence[np.ndarray], fraction: float,
             rng: np.random.Generator
             ) -> tuple[list[np.ndarray], np.ndarray]:
  """Carves a validation split out of the training clients' examples.

  Each client c gives floor(fraction * n_c) of its examples, drawn uniformly
  at random, to the validation split and keeps at least one. Tuning reads
  this split, never the test split; the training population is the same
  whichever split a run evaluates on.

  Args:
    partition: N arrays of example indices, one per client.
    fraction: in [0, 1); 0 holds nothing out.
    rng: the draw (its own stream, so the client split does not move).

  Returns:
    (the partition without the held-out examples, the held-out indices
    sorted).
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f'validation_fraction must be in [0, 1), got {fraction}')
  kept, held = [], []
  for members in partition:
    count = min(int(fraction * len(members)), len(members) - 1)
    chosen = np.zeros(len(members), bool)
    chosen[rng.permutation(len(members))[:max(count, 0)]] = True
    kept.append(members[~chosen])
    held.append(members[chosen])
  return kept, np.sort(np.concatenate(held)).astype(np.int64)


def held_out_split(features: Mapping[str, np.ndarray], labels: np.ndarray,
                   indices: np.ndarray) -> TestData:
  """The examples at `indices` as a centralized split, every modality
  present (as the test split is)."""
  return TestData({m: x[indices] for m, x in features.items()},
                  labels[indices].astype(np.int32))


def draw_modality_mask(modalities: Sequence[str], num_clients: int,
                       missing_rate: float,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
  """One Bernoulli(missing_rate) draw per client and modality.

  This is the FedMultimodal protocol. A client that draws every modality
  missing keeps one modality chosen uniformly at random, since a client
  without data cannot take part.
  """
  missing = rng.random((num_clients, len(modalities))) < missing_rate
  empty = missing.all(axis=1)
  keep = rng.integers(0, len(modalities), num_clients)
  missing[empty, keep[empty]] = False
  return {m: ~missing[:, i] for i, m in enumerate(modalities)}


def from_partition(features: Mapping[str, np.ndarray], labels: np.ndarray,
                   partition: Sequence[np.ndarray],
                   modality_mask: Mapping[str, np.ndarray] | None = None,
                   weights: np.ndarray | None = None) -> FederatedData:
  """Packs per-client example lists into padded `FederatedData`.

  Args:
    features: {modality: [X, ...]} for all X examples.
    labels: [X] integer labels.
    partition: N arrays of example indices, one per client.
    modality_mask: {modality: [N] bool}; default all present. Features of a
      missing modality are zeroed so nothing leaks through them.
    weights: [N] aggregation weights; default the client example counts.

  Returns:
    `FederatedData` with E = the largest client's size, as NumPy arrays (put
    it on device with `jax.device_put`).
  """
  num_clients = len(partition)
  counts = np.array([len(p) for p in partition])
  slots = int(counts.max())
  index = np.zeros((num_clients, slots), np.int64)
  example_mask = np.arange(slots)[None, :] < counts[:, None]
  for client, members in enumerate(partition):
    index[client, :len(members)] = members
  if modality_mask is None:
    modality_mask = {m: np.ones(num_clients, bool) for m in features}
  packed = {}
  for m, x in features.items():
    present = example_mask & np.asarray(modality_mask[m])[:, None]
    shape = present.shape + (1,) * (x.ndim - 1)
    packed[m] = np.where(present.reshape(shape), x[index], 0).astype(x.dtype)
  if weights is None:
    weights = counts
  return FederatedData(
      features=packed,
      labels=np.where(example_mask, labels[index], 0).astype(np.int32),
      example_mask=example_mask,
      modality_mask={m: np.asarray(v, bool) for m, v in modality_mask.items()},
      weights=np.asarray(weights, np.float32),
  )
