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

import numpy as np


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


def standardize(train: np.ndarray, *others: np.ndarray,
                axis=None) -> list[np.ndarray]:
  """Every array standardized with `train`'s mean and standard deviation
  (over `axis`: None for one scalar, or the axes reduced, e.g. all but the
  channel axis), as float32."""
  mean = train.mean(axis=axis, keepdims=axis is not None)
  std = train.std(axis=axis, keepdims=axis is not None) + 1e-6
  return [((x - mean) / std).astype(np.float32) for x in (train,) + others]
