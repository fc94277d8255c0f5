"""UCI-HAR: smartphone accelerometer and gyroscope windows of 30 subjects
doing 6 activities, as a TensorFlow Datasets builder, and its federated
loader.

Raw files (`manual_dir`): the official archive unpacked, with its
`UCI HAR Dataset/` folder (or that folder itself):
  {train,test}/Inertial Signals/body_acc_{x,y,z}_{split}.txt and
      body_gyro_{x,y,z}_{split}.txt: one window of 128 samples per line
      (consecutive windows overlap by half);
  {train,test}/y_{split}.txt: the activity of each window, 1-6;
  {train,test}/subject_{split}.txt: its subject, 1-30.

Records: one per window; features acc [128, 3] float32 (body acceleration,
gravity removed, in g), gyro [128, 3] float32 (angular velocity, rad/s),
label (ClassLabel: ACTIVITIES), subject (int32, 1-30) and window_id (int32,
the window's line in its split's files). Splits: the official ones, 'train'
(21 subjects) and 'test' (9 other subjects): subject-disjoint.

Clients (`load_federated`): 'natural', one per subject split at random into
`clients_per_subject` (FedMultimodal's setting), or 'dirichlet' over the
labels. Inputs are standardized per channel with the train split's
statistics.
"""

import dataclasses
import functools
import os

import numpy as np

from fedmchain_jax.data import av_raw
from fedmchain_jax.data import builders
from fedmchain_jax.data import federated

URL = 'https://archive.ics.uci.edu/dataset/240'
LICENSE = 'CC BY 4.0'
ACTIVITIES = ('walking', 'walking_upstairs', 'walking_downstairs', 'sitting',
              'standing', 'laying')
LABELS = ACTIVITIES
MODALITIES = ('acc', 'gyro')
WINDOW = 128
SIGNALS = {'acc': 'body_acc', 'gyro': 'body_gyro'}
VERSION = '1.0.0'
RawDataError = av_raw.RawDataError


def find_root(manual_dir: str) -> str:
  """The folder holding train/ and test/, or a clear error."""
  manual_dir = os.path.expanduser(manual_dir)
  for root in (os.path.join(manual_dir, 'UCI HAR Dataset'), manual_dir):
    if all(os.path.isdir(os.path.join(root, s)) for s in ('train', 'test')):
      return root
  raise RawDataError(
      f'UCI-HAR raw files not found: {manual_dir!r} must hold the unpacked '
      f"'UCI HAR Dataset' folder (train/ and test/ with 'Inertial Signals'; "
      f'from {URL})')


def split_files(root: str, split: str) -> dict[str, str]:
  """{name: path} of the files one split is read from."""
  base = os.path.join(root, split)
  files = {'label': os.path.join(base, f'y_{split}.txt'),
           'subject': os.path.join(base, f'subject_{split}.txt')}
  for stem in SIGNALS.values():
    for axis in 'xyz':
      files[f'{stem}_{axis}'] = os.path.join(
          base, 'Inertial Signals', f'{stem}_{axis}_{split}.txt')
  return files


def read_table(path: str, width: int) -> np.ndarray:
  """A whitespace-separated text table of `width` numbers a line, [N, width].

  Raises:
    RawDataError: the file is missing, or a line is not `width` numbers
      (the message names the file and the line).
  """
  try:
    with open(path) as f:
      text = f.read()
  except FileNotFoundError:
    raise RawDataError(f'UCI-HAR file missing: {path!r}') from None
  except (OSError, UnicodeDecodeError) as e:
    raise RawDataError(f'cannot read UCI-HAR file {path!r}: {e}') from None
  lines = [line for line in text.splitlines() if line.strip()]
  try:
    values = np.array(text.split(), np.float64)
  except ValueError:
    values = None
  if values is not None and values.size == len(lines) * width:
    return values.reshape(len(lines), width)
  for number, line in enumerate(text.splitlines(), 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != width:
      raise RawDataError(f'UCI-HAR file {path!r}, line {number}: expected '
                         f'{width} numbers, found {len(fields)}')
    try:
      np.array(fields, np.float64)
    except ValueError:
      raise RawDataError(f'UCI-HAR file {path!r}, line {number}: not a '
                         f'number in {line.strip()[:60]!r}') from None
  raise RawDataError(f'UCI-HAR file {path!r} could not be read as a table')


def read_raw(root: str, split: str) -> dict[str, np.ndarray]:
  """One split's windows as arrays (the builder's records)."""
  files = split_files(root, split)
  columns = {name: read_table(path, WINDOW if name not in ('label', 'subject')
                              else 1) for name, path in files.items()}
  rows = {name: len(table) for name, table in columns.items()}
  count = rows['label']
  for name, n in rows.items():
    if n != count:
      raise RawDataError(
          f'UCI-HAR file {files[name]!r} has {n} lines; '
          f'{files["label"]!r} has {count} (one line per window in every '
          'file of a split)')
  labels = columns['label'][:, 0]
  bad = np.flatnonzero((labels < 1) | (labels > len(ACTIVITIES)) |
                       (labels != np.round(labels)))
  if bad.size:
    raise RawDataError(
        f'UCI-HAR file {files["label"]!r}, line {bad[0] + 1}: activity '
        f'{labels[bad[0]]:g} is not one of 1-{len(ACTIVITIES)}')
  records = {'label': labels.astype(np.int64) - 1,
             'subject': columns['subject'][:, 0].astype(np.int32),
             'window_id': np.arange(count, dtype=np.int32)}
  for modality, stem in SIGNALS.items():
    records[modality] = np.stack(
        [columns[f'{stem}_{axis}'] for axis in 'xyz'], -1).astype(np.float32)
  return records


@functools.cache
def builder_classes():
  """(UciHarConfig, UciHar), defined (and registered with TFDS) once."""
  tfds = builders.tfds()

  @dataclasses.dataclass
  class UciHarConfig(tfds.core.BuilderConfig):
    pass

  class UciHar(tfds.core.GeneratorBasedBuilder):
    """UCI-HAR inertial windows: accelerometer and gyroscope."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {'1.0.0': 'First release.'}
    BUILDER_CONFIGS = [UciHarConfig(name='body', version=VERSION)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Unpack the UCI HAR Dataset archive ({URL}) into <manual_dir>, so "
        "that <manual_dir>/UCI HAR Dataset/train/ exists.")

    def _info(self):
      window = (WINDOW, 3)
      return self.dataset_info_from_configs(
          description=__doc__,
          features=tfds.features.FeaturesDict({
              'acc': tfds.features.Tensor(shape=window, dtype=np.float32),
              'gyro': tfds.features.Tensor(shape=window, dtype=np.float32),
              'label': tfds.features.ClassLabel(names=ACTIVITIES),
              'subject': tfds.features.Scalar(dtype=np.int32),
              'window_id': tfds.features.Scalar(dtype=np.int32),
          }),
          homepage=URL, license=LICENSE)

    def _split_generators(self, dl_manager):
      root = find_root(dl_manager.manual_dir)
      return {split: self._generate_examples(read_raw(root, split))
              for split in ('train', 'test')}

    def _generate_examples(self, arrays):
      for i in range(len(arrays['label'])):
        yield int(arrays['window_id'][i]), {k: v[i]
                                            for k, v in arrays.items()}

  return UciHarConfig, UciHar


def __getattr__(name: str):
  if name in ('UciHar', 'UciHarConfig'):
    config_class, builder_class = builder_classes()
    return builder_class if name == 'UciHar' else config_class
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def build(manual_dir: str, data_dir: str):
  """Builds (once; later calls reuse `data_dir`) and returns the builder."""
  _, UciHar = builder_classes()  # pylint: disable=invalid-name
  builder = UciHar(config='body', data_dir=os.path.expanduser(data_dir),
                   file_format='array_record')
  if not builder.is_prepared():
    find_root(manual_dir)  # A clear error before TFDS checks manual_dir.
  return builders.prepare(builder, manual_dir, 'uci_har')


def read_split(builder, split: str) -> dict[str, np.ndarray]:
  """A whole split as arrays, in the files' line order."""
  return builders.read_split(builder, split, 'window_id')


def load_federated(manual_dir: str, data_dir: str, *, seed: int = 0,
                   partition: str = 'natural', clients_per_subject: int = 1,
                   num_clients: int = 30, dirichlet_alpha: float = 1.0,
                   missing_modality_rate: float = 0.0, min_examples: int = 2,
                   validation_fraction: float = 0.0, held_out: str = 'test',
                   ) -> tuple[federated.FederatedData, federated.TestData]:
  """UCI-HAR as federated train data and the subject-disjoint test split.

  Arguments as `av_digits.load_federated` (`clients_per_subject` in place
  of clients per speaker). Returns modalities 'acc' and 'gyro', [128, 3]
  each, standardized per channel with the train split's statistics.
  """
  federated.check_held_out(held_out)
  builder = build(manual_dir, data_dir)
  train = read_split(builder, 'train')
  test = read_split(builder, 'test') if held_out == 'test' else None
  stats = {m: (train[m].mean((0, 1)), train[m].std((0, 1)) + 1e-6)
           for m in MODALITIES}

  def features(split):
    return {m: ((split[m] - stats[m][0]) / stats[m][1]).astype(np.float32)
            for m in MODALITIES}

  return builders.federate(
      train, test, features, MODALITIES, 'subject', seed=seed,
      partition=partition, clients_per_group=clients_per_subject,
      num_clients=num_clients, dirichlet_alpha=dirichlet_alpha,
      missing_modality_rate=missing_modality_rate, min_examples=min_examples,
      validation_fraction=validation_fraction, held_out=held_out)
