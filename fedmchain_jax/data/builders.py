"""What the TFDS builders of raw-file datasets share (`av_digits`,
`uci_har`, `crema_d`).

Each builder is a `tfds.core.GeneratorBasedBuilder` with plain tensor
features, written as `array_record` into a cache directory once and read
back with random access (`as_data_source`), so neither building nor
training needs TensorFlow. TensorFlow Datasets itself (the `data` extra) is
imported on first use.
"""

import contextlib
import functools
import io
import logging
import os
from typing import Callable, Mapping, Sequence

import numpy as np

from fedmchain_jax.data import federated

# How a raw-file dataset's training examples become clients
# (`federated_from_splits`).
PARTITIONS = ('natural', 'dirichlet')


@functools.cache
def tfds():
  import tensorflow_datasets  # pylint: disable=g-import-not-at-top
  return tensorflow_datasets


@contextlib.contextmanager
def without_download_lines():
  """Keeps TFDS's 'Downloading and preparing dataset' lines (printed to
  stdout) off the console: nothing is downloaded, the builder reads the
  manual directory. They go to the debug log instead."""
  printed = io.StringIO()
  try:
    with contextlib.redirect_stdout(printed):
      yield
  finally:
    for line in printed.getvalue().splitlines():
      if line.strip():
        logging.getLogger('absl').debug('tfds: %s', line)


def prepare(builder, manual_dir: str, what: str):
  """Builds `builder` from `manual_dir` unless its cache holds it already.

  `what` names the dataset and config in the log line.
  """
  log = logging.getLogger('absl')
  if builder.is_prepared():
    log.info('Reading %s from %s.', what, builder.data_dir)
    return builder
  log.info('Building %s from %s into %s (once; later runs read it from '
           'there).', what, manual_dir, builder.data_dir)
  with without_download_lines():
    builder.download_and_prepare(
        download_config=tfds().download.DownloadConfig(
            manual_dir=os.path.expanduser(manual_dir)))
  return builder


def read_split(builder, split: str, order: str) -> dict[str, np.ndarray]:
  """A whole split as arrays, sorted by the id feature `order` (so the
  result does not depend on the stored order)."""
  source = builder.as_data_source()[split]
  records = [source[i] for i in range(len(source))]
  arrays = {k: np.stack([r[k] for r in records]) for k in records[0]}
  ids = np.argsort(arrays[order], kind='stable')
  return {k: v[ids] for k, v in arrays.items()}


def natural_partition(groups: np.ndarray, clients_per_group: int,
                      rng: np.random.Generator) -> list[np.ndarray]:
  """One client per group (speaker, subject, actor), each split at random
  into `clients_per_group` clients."""
  parts = []
  for group in np.unique(groups):
    members = rng.permutation(np.flatnonzero(groups == group))
    parts.extend(np.sort(p) for p in np.array_split(members,
                                                    clients_per_group))
  return parts


def federate(train: Mapping[str, np.ndarray],
             test: Mapping[str, np.ndarray] | None,
             features: Callable[[Mapping[str, np.ndarray]],
                                dict[str, np.ndarray]],
             modalities: Sequence[str], group: str, *, seed: int,
             partition: str, clients_per_group: int, num_clients: int,
             dirichlet_alpha: float, missing_modality_rate: float,
             min_examples: int, validation_fraction: float, held_out: str,
             ) -> tuple[federated.FederatedData, federated.TestData]:
  """A built dataset's train split as clients, and the held-out split.

  Args:
    train, test: a split's arrays (`read_split`), with 'label' and the
      `group` feature; test may be None when held_out is 'validation'.
    features: split arrays -> {modality: model input}.
    modalities: the names `features` returns (for the missing-modality draw).
    group: the feature a natural client is made of (speaker, subject, ...).
    seed: the client split, missing-modality and validation draws.
    partition: 'natural' (groups x clients_per_group clients) or
      'dirichlet' (num_clients clients, Dirichlet(dirichlet_alpha) labels,
      at least min_examples each).
    missing_modality_rate: per client and modality.
    validation_fraction, held_out: `federated.hold_out`; 'test' or
      'validation'.
  """
  federated.check_held_out(held_out)
  rng = np.random.default_rng([seed, 21])
  if partition == 'natural':
    parts = natural_partition(train[group], clients_per_group, rng)
  elif partition == 'dirichlet':
    parts = federated.dirichlet_partition(train['label'], num_clients,
                                          dirichlet_alpha, rng, min_examples)
  else:
    raise ValueError(f'partition must be one of {PARTITIONS}, got '
                     f'{partition!r}')
  mask = federated.draw_modality_mask(modalities, len(parts),
                                      missing_modality_rate, rng)
  parts, validation = federated.hold_out(
      parts, validation_fraction, np.random.default_rng([seed, 22]))
  inputs = features(train)
  data = federated.from_partition(inputs, train['label'], parts, mask)
  if held_out == 'validation':
    return data, federated.held_out_split(inputs, train['label'], validation)
  return data, federated.TestData(features(test),
                                  test['label'].astype(np.int32))
