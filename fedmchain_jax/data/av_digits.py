"""AV-digits: FSDD spoken digits paired with MNIST handwritten digits, as a
TensorFlow Datasets builder, and its federated loader.

TensorFlow Datasets (the `data` extra) is imported on first use, never
TensorFlow: the builder writes `array_record` files with plain tensor
features and is read back with `tfds.data_source`-style random access. The
builder classes are defined then too (`builder_classes()`; the module
attributes `AvDigits` and `AvDigitsConfig` resolve to them), so importing
this module needs only NumPy.

Raw files (`manual_dir`), found in any of these layouts:
  audio:  manual_dir/fsdd/recordings/, manual_dir/recordings/ or manual_dir/fsdd/
          with {digit}_{speaker}_{take}.wav (8 kHz mono 16-bit)
  images: manual_dir/mnist/, manual_dir/mnist5k/ or manual_dir/ with
          train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
          (and optionally t10k-*, used for the test split's images)

Records: one per clip. Split 'test' holds takes 0-4 of every speaker and
digit, 'train' the rest (the FSDD convention). Each clip is paired with an
image of the same digit (`av_raw.pair_by_label`, seeded); test clips draw
from test images only (the t10k files, or else a held-out tenth of each
digit's train images), so no image is in both splits.

Features: image [28, 28] uint8, audio [20, 20] float32 log-mel
(`av_raw.log_mel`), label (ClassLabel, 10), speaker (int32 index into
`info.metadata['speakers']`), take, clip_id (index of the clip in the sorted
file list) and image_id (index into the MNIST file it came from): the stored
order is shuffled, the ids are not.

Builder configs: `pairing_seed`, `audio_snr_db` (white noise added to the
waveform before the spectrogram; None = clean) and `image_energy_removed`
(AV-MNIST-style PCA weakening); each config is built and cached once in
`data_dir`.
"""

import dataclasses
import functools
import os
from typing import Any, Mapping

import numpy as np

from fedmchain_jax.data import av_raw
from fedmchain_jax.data import builders
from fedmchain_jax.data import federated

LABELS = tuple(str(d) for d in range(10))
MODALITIES = ('audio', 'image')
VERSION = '1.0.0'
_AUDIO_DIRS = ('fsdd/recordings', 'recordings', 'fsdd')
_IMAGE_DIRS = ('mnist', 'mnist5k', '.')


def find_raw_dirs(manual_dir: str) -> tuple[str, str]:
  """(audio directory, image directory) inside `manual_dir`, or a clear error."""
  manual_dir = os.path.expanduser(manual_dir)
  if not os.path.isdir(manual_dir):
    raise av_raw.RawDataError(
        f'AV-digits raw files not found: {manual_dir!r} is not a directory; '
        'it must hold fsdd/recordings/*.wav (from '
        f'{av_raw.FSDD_URL}) and MNIST idx files in mnist/ (from '
        f'{av_raw.MNIST_URL})')
  audio = next((os.path.join(manual_dir, d) for d in _AUDIO_DIRS
                if os.path.isdir(os.path.join(manual_dir, d))), None)
  if audio is None:
    raise av_raw.RawDataError(
        f'FSDD recordings not found: expected {manual_dir}/fsdd/recordings/ '
        f'with {{digit}}_{{speaker}}_{{take}}.wav files (from '
        f'{av_raw.FSDD_URL})')
  for d in _IMAGE_DIRS:
    path = os.path.normpath(os.path.join(manual_dir, d))
    if any(os.path.exists(os.path.join(path, av_raw.IMAGE_FILES[0] + s))
           for s in ('', '.gz')):
      return audio, path
  raise av_raw.RawDataError(
      f'MNIST images not found: expected {manual_dir}/mnist/'
      f'{av_raw.IMAGE_FILES[0]}[.gz] and {av_raw.IMAGE_FILES[1]}[.gz] (idx '
      f'format, from {av_raw.MNIST_URL})')


def _config_fields(pairing_seed: int, audio_snr_db: float | None,
                   image_energy_removed: float) -> dict[str, Any]:
  snr = 'clean' if audio_snr_db is None else f'snr{audio_snr_db:g}'
  name = f'seed{pairing_seed}_{snr}_pca{image_energy_removed:g}'
  return dict(name=name.replace('.', 'p').replace('-', 'm'),
              pairing_seed=pairing_seed, audio_snr_db=audio_snr_db,
              image_energy_removed=image_energy_removed)


def make_config(pairing_seed: int = 0, audio_snr_db: float | None = None,
                image_energy_removed: float = 0.0) -> 'AvDigitsConfig':
  """A builder config whose name encodes its settings (its cache folder)."""
  config_class, _ = builder_classes()
  return config_class(version=VERSION, **_config_fields(
      pairing_seed, audio_snr_db, image_energy_removed))


def build_records(clips, images, image_labels, test_images, test_labels,
                  config: 'AvDigitsConfig') -> dict[str, dict[str, np.ndarray]]:
  """The train/test records as arrays, from decoded raw inputs.

  Shared by the manual-directory builder and the TFDS-catalog path.

  Args:
    clips: list of (label, speaker, take, samples float32 array).
    images, image_labels: the train image pool [X, 28, 28] uint8 and labels.
    test_images, test_labels: the test image pool, or None to hold out a
      tenth of each digit of the train pool.
    config: pairing seed and weakening options.

  Returns:
    {'train' | 'test': {feature: array}} and the sorted speaker names under
    key 'speakers'.
  """
  image_ids = np.arange(len(images))
  if test_images is None:
    train_ids, test_ids = av_raw.split_images(image_labels, 0.1,
                                              config.pairing_seed)
    pools = {'train': (images[train_ids], image_labels[train_ids], train_ids),
             'test': (images[test_ids], image_labels[test_ids], test_ids)}
  else:
    pools = {'train': (images, image_labels, image_ids),
             'test': (test_images, test_labels, np.arange(len(test_images)))}
  weakened = av_raw.remove_pca_energy(pools['train'][0], [pools['test'][0]],
                                      config.image_energy_removed)
  pools = {'train': (weakened[0],) + pools['train'][1:],
           'test': (weakened[1],) + pools['test'][1:]}
  speakers = sorted({c[1] for c in clips})
  rng = np.random.default_rng([config.pairing_seed, 3])
  records = {'speakers': speakers}
  for split in ('train', 'test'):
    chosen = [i for i, c in enumerate(clips)
              if (c[2] in av_raw.TEST_TAKES) == (split == 'test')]
    labels = np.array([clips[i][0] for i in chosen], np.int64)
    pool_images, pool_labels, pool_ids = pools[split]
    paired = av_raw.pair_by_label(labels, pool_labels, config.pairing_seed)
    audio = []
    for i in chosen:
      samples = clips[i][3]
      if config.audio_snr_db is not None:
        samples = av_raw.add_noise(samples, config.audio_snr_db, rng)
      audio.append(av_raw.log_mel(samples))
    records[split] = {
        'image': pool_images[paired],
        'audio': np.stack(audio) if audio else np.zeros(
            (0,) + av_raw.SPECTROGRAM_SHAPE, np.float32),
        'label': labels,
        'speaker': np.array([speakers.index(clips[i][1]) for i in chosen],
                            np.int32),
        'take': np.array([clips[i][2] for i in chosen], np.int32),
        'clip_id': np.array(chosen, np.int32),
        'image_id': pool_ids[paired].astype(np.int32),
    }
  return records


@functools.cache
def builder_classes():
  """(AvDigitsConfig, AvDigits), defined (and registered with TFDS) once."""
  tfds = builders.tfds()

  @dataclasses.dataclass
  class AvDigitsConfig(tfds.core.BuilderConfig):
    pairing_seed: int = 0
    audio_snr_db: float | None = None
    image_energy_removed: float = 0.0

  class AvDigits(tfds.core.GeneratorBasedBuilder):
    """FSDD spoken digits paired by label with MNIST images."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {'1.0.0': 'First release.'}
    BUILDER_CONFIGS = [AvDigitsConfig(version=VERSION,
                                      **_config_fields(0, None, 0.0))]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        'Put FSDD recordings in <manual_dir>/fsdd/recordings/ '
        f'({av_raw.FSDD_URL}) and MNIST idx files in <manual_dir>/mnist/ '
        f'({av_raw.MNIST_URL}).')

    def _info(self) -> tfds.core.DatasetInfo:
      return self.dataset_info_from_configs(
          description=__doc__,
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Tensor(shape=(28, 28), dtype=np.uint8),
              'audio': tfds.features.Tensor(shape=av_raw.SPECTROGRAM_SHAPE,
                                            dtype=np.float32),
              'label': tfds.features.ClassLabel(num_classes=10),
              'speaker': tfds.features.Scalar(dtype=np.int32),
              'take': tfds.features.Scalar(dtype=np.int32),
              'clip_id': tfds.features.Scalar(dtype=np.int32),
              'image_id': tfds.features.Scalar(dtype=np.int32),
          }),
          homepage=av_raw.FSDD_URL,
          metadata=tfds.core.MetadataDict(),
      )

    def _split_generators(self, dl_manager):
      audio_dir, image_dir = find_raw_dirs(dl_manager.manual_dir)
      clips = [(c.label, c.speaker, c.take, av_raw.read_wav(c.path))
               for c in av_raw.find_clips(audio_dir)]
      images, labels = av_raw.read_mnist(image_dir)
      test_images = test_labels = None
      if av_raw.has_mnist_test(image_dir):
        test_images, test_labels = av_raw.read_mnist(image_dir, test=True)
      records = build_records(clips, images, labels, test_images, test_labels,
                              self.builder_config)
      self.info.metadata['speakers'] = records['speakers']
      return {split: self._generate_examples(records[split])
              for split in ('train', 'test')}

    def _generate_examples(self, arrays):
      for i in range(len(arrays['label'])):
        yield int(arrays['clip_id'][i]), {k: v[i] for k, v in arrays.items()}

  return AvDigitsConfig, AvDigits


def __getattr__(name: str):
  if name in ('AvDigits', 'AvDigitsConfig'):
    config_class, builder_class = builder_classes()
    return builder_class if name == 'AvDigits' else config_class
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def build(manual_dir: str, data_dir: str,
          config: 'AvDigitsConfig | None' = None) -> 'AvDigits':
  """Builds (once; later calls reuse `data_dir`) and returns the builder."""
  _, AvDigits = builder_classes()  # pylint: disable=invalid-name
  config = config or make_config()
  # TFDS refuses a config object named like a registered one: pass the name.
  known = AvDigits.builder_configs.get(config.name)
  builder = AvDigits(config=config.name if known == config else config,
                     data_dir=os.path.expanduser(data_dir),
                     file_format='array_record')
  if not builder.is_prepared():
    find_raw_dirs(manual_dir)  # A clear error before TFDS starts.
  return builders.prepare(builder, manual_dir, f'av_digits ({config.name})')


def read_split(builder: 'AvDigits', split: str) -> dict[str, np.ndarray]:
  """A whole split as arrays, sorted by clip_id (independent of storage)."""
  return builders.read_split(builder, split, 'clip_id')


def _features(split: Mapping[str, np.ndarray], audio_stats) -> dict:
  mean, std = audio_stats
  return {'audio': ((split['audio'] - mean) / std).astype(np.float32),
          'image': (split['image'].astype(np.float32) / 255.0)}


def load_federated(manual_dir: str | None, data_dir: str, *, seed: int = 0,
                   partition: str = 'natural', clients_per_speaker: int = 1,
                   num_clients: int = 10, dirichlet_alpha: float = 1.0,
                   missing_modality_rate: float = 0.0, min_examples: int = 2,
                   config: 'AvDigitsConfig | None' = None,
                   source: str = 'manual',
                   validation_fraction: float = 0.0,
                   held_out: str = 'test',
                   ) -> tuple[federated.FederatedData, federated.TestData]:
  """AV-digits as federated train data and a centralized test split.

  Args:
    manual_dir, data_dir: raw files and the TFDS cache.
    seed: the client split and missing-modality draws.
    partition: 'natural' (speakers x clients_per_speaker clients) or
      'dirichlet' (num_clients clients, Dirichlet(dirichlet_alpha) labels).
    missing_modality_rate: per client and modality, as the embedded data.
    config: the builder config (pairing seed, weakening).
    source: 'manual' (the builder on `manual_dir`, cached in `data_dir`) or
      'catalog' (`records_from_tfds_catalog`; needs TensorFlow and internet).
    validation_fraction: share of each client's examples held out for
      validation (`federated.hold_out`); the rest train.
    held_out: the split returned beside the population: 'test' or
      'validation' (the test split is then not read).

  Returns:
    (FederatedData, the held-out split as TestData) with modalities
    'audio' ([20, 20], standardized with the train split's statistics) and
    'image' ([28, 28] in [0, 1]).
  """
  federated.check_held_out(held_out)
  if source == 'manual':
    builder = build(manual_dir, data_dir, config)
    train = read_split(builder, 'train')
    test = read_split(builder, 'test') if held_out == 'test' else None
  elif source == 'catalog':
    records = records_from_tfds_catalog(data_dir, config)
    train, test = records['train'], records.get('test')
  else:
    raise ValueError(f"source must be 'manual' or 'catalog', got {source!r}")
  stats = (train['audio'].mean(), train['audio'].std() + 1e-6)
  return builders.federate(
      train, test, lambda split: _features(split, stats), MODALITIES,
      'speaker', seed=seed, partition=partition,
      clients_per_group=clients_per_speaker, num_clients=num_clients,
      dirichlet_alpha=dirichlet_alpha,
      missing_modality_rate=missing_modality_rate,
      min_examples=min_examples, validation_fraction=validation_fraction,
      held_out=held_out)


def records_from_tfds_catalog(data_dir: str | None = None,
                              config: 'AvDigitsConfig | None' = None):
  """The same records from the TFDS catalog's `spoken_digit` and `mnist`.

  For users with internet and the `tensorflow` extra: downloads both through
  `tfds.load` (which needs TensorFlow), decodes them to NumPy and runs the
  same pairing (`build_records`). TFDS' `spoken_digit` has 2,500 clips from
  5 speakers; speaker and take come from its file names.
  """
  tfds = builders.tfds()
  config = config or make_config()
  spoken = tfds.as_numpy(tfds.load('spoken_digit', split='train',
                                   data_dir=data_dir))
  clips = []
  for example in spoken:
    name = os.path.basename(example['audio/filename'].decode())
    match = av_raw.FSDD_NAME.match(name)
    if match is None:
      raise av_raw.RawDataError(f'unexpected spoken_digit file name {name!r}')
    samples = example['audio'].astype(np.float32) / 32768.0
    clips.append((int(match.group(1)), match.group(2), int(match.group(3)),
                  samples))
  mnist = {split: tfds.as_numpy(tfds.load('mnist', split=split, batch_size=-1,
                                          data_dir=data_dir))
           for split in ('train', 'test')}
  return build_records(
      clips, mnist['train']['image'][..., 0], mnist['train']['label'],
      mnist['test']['image'][..., 0], mnist['test']['label'], config)
