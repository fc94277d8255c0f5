"""AV-digits: the TFDS builder on a tiny raw directory the test writes, the
readers' error messages, the features, splits and the federated loader."""

import gzip
import os
import wave

import jax
import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')

from fedmchain_jax.data import av_digits  # pylint: disable=g-import-not-at-top
from fedmchain_jax.data import av_raw  # pylint: disable=g-import-not-at-top

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, '..', 'shared', 'data')
SPEAKERS = ('ann', 'bob')
DIGITS = (0, 1, 2)
TAKES = (0, 1, 5, 6, 7)
IMAGES_PER_DIGIT = 4

tfds.disable_progress_bar()


def write_wav(path, samples, rate=8000):
  with wave.open(str(path), 'wb') as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes((np.clip(samples, -1, 1) * 32767).astype('<i2').tobytes())


def write_idx(path, array, magic):
  header = magic.to_bytes(4, 'big') + b''.join(
      d.to_bytes(4, 'big') for d in array.shape)
  with gzip.open(str(path), 'wb') as f:
    f.write(header + array.astype(np.uint8).tobytes())


def make_raw(root, corrupt_wav=False, bad_magic=False):
  """FSDD-style wavs (a tone per digit) and MNIST-style idx files whose pixel
  value is 10 * digit + k, so the pairing can be read back from the image."""
  audio = root / 'fsdd' / 'recordings'
  audio.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for speaker in SPEAKERS:
    for digit in DIGITS:
      for take in TAKES:
        length = int(rng.integers(2000, 9000))
        t = np.arange(length) / 8000
        write_wav(audio / f'{digit}_{speaker}_{take}.wav',
                  0.5 * np.sin(2 * np.pi * (300 + 600 * digit) * t))
  if corrupt_wav:
    (audio / '1_bob_6.wav').write_bytes(b'RIFF not really a wav file')
  images = root / 'mnist'
  images.mkdir()
  labels = np.repeat(np.array(DIGITS), IMAGES_PER_DIGIT)
  pixels = 10 * labels + np.tile(np.arange(IMAGES_PER_DIGIT), len(DIGITS))
  write_idx(images / 'train-images-idx3-ubyte.gz',
            np.broadcast_to(pixels[:, None, None], (len(labels), 28, 28)),
            2049 if bad_magic else 2051)
  write_idx(images / 'train-labels-idx1-ubyte.gz', labels, 2049)
  return root


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp('av')
  make_raw(root / 'raw')
  builder = av_digits.build(str(root / 'raw'), str(root / 'data'))
  return root, builder


def test_splits_labels_and_ids(built):
  _, builder = built
  train = av_digits.read_split(builder, 'train')
  test = av_digits.read_split(builder, 'test')
  per_speaker_digit = len(SPEAKERS) * len(DIGITS)
  assert len(train['label']) == per_speaker_digit * 3  # Takes 5, 6, 7.
  assert len(test['label']) == per_speaker_digit * 2  # Takes 0, 1.
  assert set(train['take']) == {5, 6, 7} and set(test['take']) == {0, 1}
  assert builder.info.metadata['speakers'] == list(SPEAKERS)
  clips = av_raw.find_clips(str(built[0] / 'raw' / 'fsdd' / 'recordings'))
  for split in (train, test):
    assert split['audio'].shape[1:] == (20, 20)
    assert split['image'].shape[1:] == (28, 28)
    assert split['image'].dtype == np.uint8
    for i, clip_id in enumerate(split['clip_id']):
      clip = clips[clip_id]
      assert split['label'][i] == clip.label
      assert SPEAKERS[split['speaker'][i]] == clip.speaker
      assert split['take'][i] == clip.take
  # Stored order is shuffled; ids are unique.
  ids = np.concatenate([train['clip_id'], test['clip_id']])
  assert sorted(ids) == list(range(len(clips)))


def test_pairing_matches_labels_and_keeps_splits_apart(built):
  _, builder = built
  train = av_digits.read_split(builder, 'train')
  test = av_digits.read_split(builder, 'test')
  for split in (train, test):
    # Pixel value 10 * digit + k: the paired image shows the clip's digit and
    # image_id is its index in the idx file.
    pixel = split['image'][:, 0, 0].astype(int)
    np.testing.assert_array_equal(pixel // 10, split['label'])
    np.testing.assert_array_equal(
        pixel, 10 * split['label'] + split['image_id'] % IMAGES_PER_DIGIT)
  # One image of each digit is held out for the test clips.
  assert not set(train['image_id']) & set(test['image_id'])
  assert len(set(test['image_id'])) == len(DIGITS)


def test_spectrogram_sees_the_tone(built):
  _, builder = built
  train = av_digits.read_split(builder, 'train')
  peak_band = train['audio'].mean(axis=1).argmax(axis=1)
  # Higher digits were higher tones: their energy peaks in higher mel bands.
  means = [peak_band[train['label'] == d].mean() for d in DIGITS]
  assert means[0] < means[1] < means[2]


def test_second_build_reuses_the_cache(built, monkeypatch):
  root, _ = built

  def fail(*args, **kwargs):
    raise AssertionError('rebuilt')

  monkeypatch.setattr(av_digits.AvDigits, '_split_generators', fail)
  again = av_digits.build(str(root / 'raw'), str(root / 'data'))
  assert len(av_digits.read_split(again, 'test')['label']) == 12


def test_weakening_configs_are_cached_separately(built):
  root, builder = built
  config = av_digits.make_config(pairing_seed=1, audio_snr_db=0.0,
                                 image_energy_removed=0.5)
  weak = av_digits.build(str(root / 'raw'), str(root / 'data'), config)
  assert weak.info.full_name != builder.info.full_name
  clean = av_digits.read_split(builder, 'train')
  noisy = av_digits.read_split(weak, 'train')
  np.testing.assert_array_equal(clean['clip_id'], noisy['clip_id'])
  assert not np.allclose(clean['audio'], noisy['audio'])


def test_missing_directory_names_it(tmp_path):
  with pytest.raises(av_raw.RawDataError) as info:
    av_digits.build(str(tmp_path / 'nowhere'), str(tmp_path / 'data'))
  message = str(info.value)
  assert str(tmp_path / 'nowhere') in message
  assert 'free-spoken-digit-dataset' in message


def test_missing_mnist_names_what_is_expected(tmp_path):
  make_raw(tmp_path / 'raw')
  for f in (tmp_path / 'raw' / 'mnist').iterdir():
    f.unlink()
  with pytest.raises(av_raw.RawDataError, match='MNIST images not found: '
                     'expected .*/mnist/train-images-idx3-ubyte'):
    av_digits.build(str(tmp_path / 'raw'), str(tmp_path / 'data'))


def test_corrupt_wav_names_the_file(tmp_path):
  make_raw(tmp_path / 'raw', corrupt_wav=True)
  with pytest.raises(av_raw.RawDataError, match=r"cannot read wav file "
                     r"'.*1_bob_6\.wav'"):
    av_digits.build(str(tmp_path / 'raw'), str(tmp_path / 'data'))


def test_wrong_idx_magic_names_the_file(tmp_path):
  make_raw(tmp_path / 'raw', bad_magic=True)
  with pytest.raises(av_raw.RawDataError, match=r"idx file '.*train-images-"
                     r"idx3-ubyte\.gz' has magic number 00000801, expected "
                     r'00000803'):
    av_digits.build(str(tmp_path / 'raw'), str(tmp_path / 'data'))


def test_pca_weakening_removes_the_requested_energy():
  rng = np.random.default_rng(0)
  basis = rng.normal(size=(5, 784))
  images = np.clip(100 + rng.normal(size=(200, 5)) * [40, 20, 10, 5, 2] @ basis,
                   0, 255).astype(np.uint8).reshape(200, 28, 28)
  same, = av_raw.remove_pca_energy(images, [], 0.0)
  np.testing.assert_array_equal(same, images)
  weak, = av_raw.remove_pca_energy(images, [], 0.5)
  centred = images.reshape(200, -1) - images.reshape(200, -1).mean(0)
  kept = weak.reshape(200, -1) - images.reshape(200, -1).mean(0)
  share = (kept.astype(float)**2).sum() / (centred.astype(float)**2).sum()
  # The first component alone carries about 0.79 of this variance.
  assert 0.6 < share < 0.9


def test_natural_and_dirichlet_partitions(built):
  root, _ = built
  data, test = av_digits.load_federated(
      str(root / 'raw'), str(root / 'data'), partition='natural',
      clients_per_speaker=3)
  assert data.num_clients == 6
  assert data.modalities == ('audio', 'image')
  assert data.features['audio'].shape[2:] == (20, 20)
  assert float(data.features['image'].max()) <= 1.0
  assert int(data.example_mask.sum()) == 18
  assert test.labels.shape == (12,)
  data, _ = av_digits.load_federated(
      str(root / 'raw'), str(root / 'data'), partition='dirichlet',
      num_clients=4, dirichlet_alpha=0.5, missing_modality_rate=0.5,
      min_examples=1)
  assert data.num_clients == 4
  present = np.stack([data.modality_mask['audio'], data.modality_mask['image']])
  assert present.any(axis=0).all()


def test_validation_runs_never_read_the_test_split(built, monkeypatch):
  root, _ = built
  read = []
  read_split = av_digits.read_split
  monkeypatch.setattr(av_digits, 'read_split',
                      lambda builder, split: read.append(split) or
                      read_split(builder, split))
  kwargs = dict(partition='natural', clients_per_speaker=3,
                validation_fraction=0.4)
  data, validation = av_digits.load_federated(
      str(root / 'raw'), str(root / 'data'), held_out='validation', **kwargs)
  assert read == ['train']
  # floor(0.4 x 3) = 1 of each of the 6 clients' 3 examples.
  assert validation.labels.shape == (6,)
  assert int(data.example_mask.sum()) == 12
  same, test = av_digits.load_federated(str(root / 'raw'),
                                        str(root / 'data'), **kwargs)
  assert read == ['train', 'train', 'test'] and test.labels.shape == (12,)
  jax.tree.map(np.testing.assert_array_equal, data, same)


def test_launcher_runs_av_digits(built, tmp_path):
  from tests.test_launcher import tiny_config
  from experiments import train
  root, _ = built
  config = tiny_config(algorithm='fedmchain', **{
      'data.name': 'av_digits', 'data.manual_dir': str(root / 'raw'),
      'data.data_dir': str(root / 'data'), 'data.clients_per_speaker': 2,
      'model.hidden': (8,)})
  records = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert [r['round'] for r in records] == [1, 2]
  assert {'eval/accuracy/audio', 'eval/accuracy/image'} <= set(records[-1])


def test_launcher_reports_missing_raw_files_as_config_error(tmp_path):
  from tests.test_launcher import tiny_config
  from experiments import config_checks, train
  config = tiny_config(**{'data.name': 'av_digits',
                          'data.manual_dir': str(tmp_path / 'none'),
                          'data.data_dir': str(tmp_path / 'data')})
  with pytest.raises(config_checks.ConfigError, match='config.data.manual_dir'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, 'fsdd')),
                    reason='the project machines\' raw data is not here')
def test_real_av_digits_counts(tmp_path):
  builder = av_digits.build(SHARED, str(tmp_path / 'data'))
  train = av_digits.read_split(builder, 'train')
  test = av_digits.read_split(builder, 'test')
  assert len(train['label']) + len(test['label']) == 3000
  assert len(test['label']) == 300
  assert len(builder.info.metadata['speakers']) == 6
  assert set(train['label']) == set(range(10))
  assert not set(train['image_id']) & set(test['image_id'])


def test_a_cut_or_tiny_wav_is_refused_with_its_reason(tmp_path):
  path = str(tmp_path / '1_bob_0.wav')
  with wave.open(path, 'wb') as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(av_raw.SAMPLE_RATE)
    f.writeframes(np.zeros(800, '<i2').tobytes())
  assert av_raw.read_wav(path).shape == (800,)
  data = open(path, 'rb').read()
  with open(path, 'wb') as f:  # Cut in half: the header still says 800.
    f.write(data[:44 + 800])
  with pytest.raises(av_raw.RawDataError, match=r"^wav file '.*1_bob_0\.wav' "
                     r"is cut short: its header declares 800 samples, the "
                     r"file holds 400$"):
    av_raw.read_wav(path)
  with open(path, 'wb') as f:
    f.write(data[:30])
  with pytest.raises(av_raw.RawDataError,
                     match=r"^cannot read wav file '.*1_bob_0\.wav': \S"):
    av_raw.read_wav(path)


def test_building_says_where_from_and_to_and_no_download(built, tmp_path,
                                                         caplog, capsys):
  import logging
  root, _ = built
  caplog.set_level(logging.INFO, logger='absl')
  av_digits.build(str(root / 'raw'), str(tmp_path / 'data'))
  assert f'from {root / "raw"} into {tmp_path / "data"}' in caplog.text
  assert 'Downloading' not in capsys.readouterr().out
  caplog.clear()
  av_digits.build(str(root / 'raw'), str(tmp_path / 'data'))
  assert 'Reading av_digits' in caplog.text
  assert str(tmp_path / 'data') in caplog.text
