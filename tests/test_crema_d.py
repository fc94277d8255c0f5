"""CREMA-D: the TFDS builder on wavs and flv clips written in the official
layout at test time, audio-only operation, the readers' errors, the
speaker-disjoint split and the federated loader."""

import logging

import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')
imageio_ffmpeg = pytest.importorskip('imageio_ffmpeg')

from fedmchain_jax.data import crema_d  # pylint: disable=g-import-not-at-top
from tests import test_av_digits  # pylint: disable=g-import-not-at-top

tfds.disable_progress_bar()

ACTORS = tuple(range(1001, 1011))  # Sorted; test actors: 1005 and 1010.
SENTENCES = ('DFA', 'IEO')


def write_wav(path, samples):
  test_av_digits.write_wav(path, samples, rate=16000)


def write_flv(path, brightness, frames=6, size=(64, 48)):
  """A flat grey clip whose brightness encodes the emotion."""
  writer = imageio_ffmpeg.write_frames(str(path), size, fps=6, codec='flv',
                                       output_params=['-f', 'flv'],
                                       macro_block_size=16)
  writer.send(None)
  frame = np.full((size[1], size[0], 3), brightness, np.uint8)
  for _ in range(frames):
    writer.send(frame)
  writer.close()


def make_raw(root, video=True):
  (root / 'AudioWAV').mkdir(parents=True)
  if video:
    (root / 'VideoFlash').mkdir()
  rng = np.random.default_rng(0)
  for actor in ACTORS:
    for sentence in SENTENCES:
      for e, emotion in enumerate(crema_d.EMOTIONS):
        stem = f'{actor}_{sentence}_{emotion}_XX'
        t = np.arange(int(rng.integers(8000, 20000))) / 16000
        write_wav(root / 'AudioWAV' / f'{stem}.wav',
                  0.5 * np.sin(2 * np.pi * (200 + 500 * e) * t))
        if video:
          write_flv(root / 'VideoFlash' / f'{stem}.flv', 30 + 40 * e)
  return root


@pytest.fixture(scope='module')
def raw(tmp_path_factory):
  return make_raw(tmp_path_factory.mktemp('crema') / 'raw')


@pytest.fixture(scope='module')
def built(raw, tmp_path_factory):
  """The TFDS cache built once from `raw`."""
  data_dir = tmp_path_factory.mktemp('crema_tfds')
  crema_d.build(str(raw), str(data_dir))
  return data_dir


def test_builder_reads_audio_and_video_with_disjoint_actors(raw, built):
  builder = crema_d.build(str(raw), str(built))
  assert builder.builder_config.name == 'audio_video'
  train = crema_d.read_split(builder, 'train')
  test = crema_d.read_split(builder, 'test')
  assert set(test['actor']) == {1005, 1010}
  assert set(train['actor']) == set(ACTORS) - {1005, 1010}
  assert len(train['label']) == 8 * 2 * 6 and len(test['label']) == 2 * 2 * 6
  assert train['audio'].shape[1:] == crema_d.AUDIO_SHAPE
  assert train['video'].shape[1:] == (32, 32, 3)
  assert builder.info.features['label'].names == list(crema_d.LABELS)
  # Labels from the file names; the video's grey level and the tone's
  # loudest mel band follow them.
  for split in (train, test):
    brightness = split['video'].mean((1, 2, 3))
    np.testing.assert_allclose(brightness, 30 + 40 * split['label'], atol=4)
    band = split['audio'][:, 2].argmax(-1)
    assert all(np.diff(band[np.argsort(split['label'], kind='stable')]) >= 0)
  assert (np.diff(train['clip_id']) > 0).all()


def test_rebuild_is_skipped_when_cached(built, tmp_path):
  # Another manual_dir without any file: the cache alone serves.
  again = crema_d.build(str(tmp_path / 'gone'), str(built))
  assert again.builder_config.name == 'audio_video'
  assert len(crema_d.read_split(again, 'test')['label']) == 24


def test_without_videos_it_builds_audio_only_and_says_so(tmp_path, caplog):
  make_raw(tmp_path / 'raw', video=False)
  with caplog.at_level(logging.INFO, logger='absl'):
    data, test = crema_d.load_federated(str(tmp_path / 'raw'),
                                        str(tmp_path / 'tfds'))
  assert data.modalities == ('audio',)
  assert 'audio only' in caplog.text
  assert set(test.features) == {'audio'}


def test_natural_clients_are_actors(raw, built):
  data, test = crema_d.load_federated(str(raw), str(built),
                                      clients_per_actor=2)
  assert data.num_clients == 8 * 2
  assert sorted(data.modalities) == ['audio', 'video']
  np.testing.assert_array_equal(data.example_mask.sum(1), [6] * 16)
  assert len(test.labels) == 24
  assert 0 <= data.features['video'].min() and data.features['video'].max() <= 1


@pytest.mark.parametrize('damage, message', [
    ('missing_video', 'CREMA-D video missing: '
                      "'{raw}/VideoFlash/1003_IEO_HAP_XX.flv'"),
    ('corrupt_video', "cannot decode CREMA-D video "
                      "'{raw}/VideoFlash/1003_IEO_HAP_XX.flv'"),
    ('corrupt_wav', "cannot read wav file '{raw}/AudioWAV/1003_IEO_HAP_XX.wav'"),
    ('bad_name', "CREMA-D file '{raw}/AudioWAV/1003_IEO_JOY_XX.wav' is not "
                 'named'),
])
def test_damaged_files_fail_with_one_line_naming_the_file(tmp_path, damage,
                                                          message):
  raw = tmp_path / 'raw'
  (raw / 'AudioWAV').mkdir(parents=True)
  (raw / 'VideoFlash').mkdir()
  for actor in ACTORS[:5]:
    stem = f'{actor}_IEO_HAP_XX'
    write_wav(raw / 'AudioWAV' / f'{stem}.wav', np.zeros(4000))
    write_flv(raw / 'VideoFlash' / f'{stem}.flv', 100, frames=2)
  stem = raw / 'AudioWAV' / '1003_IEO_HAP_XX'
  video = raw / 'VideoFlash' / '1003_IEO_HAP_XX.flv'
  if damage == 'missing_video':
    video.unlink()
  elif damage == 'corrupt_video':
    video.write_bytes(b'FLV but not really' * 4)
  elif damage == 'corrupt_wav':
    stem.with_suffix('.wav').write_bytes(b'RIFF no')
  else:
    stem.with_suffix('.wav').rename(raw / 'AudioWAV' / '1003_IEO_JOY_XX.wav')
  with pytest.raises(crema_d.RawDataError) as info:
    crema_d.build(str(raw), str(tmp_path / 'tfds'))
  text = str(info.value)
  assert '\n' not in text
  assert text.startswith(message.format(raw=raw)), text
  builder = crema_d.CremaD(config='audio_video', data_dir=str(tmp_path / 'tfds'),
                           file_format='array_record')
  assert not builder.is_prepared()


def test_config_trains_on_the_generated_files(raw, built, tmp_path):
  # pylint: disable=g-import-not-at-top
  from experiments import train
  from experiments.configs import crema_d_fedmchain
  config = crema_d_fedmchain.get_config()
  config.data.manual_dir = str(raw)
  config.data.data_dir = str(built)
  config.model.hidden = (4,)
  config.rounds.num_rounds = 2
  config.rounds.cohort_size = 3
  config.rounds.eval_every = 2
  config.client.batch_size = 4
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))[-1]
  assert final['round'] == 2 and final['eval/examples'] == 24
  assert {'eval/accuracy/audio', 'eval/accuracy/video',
          'eval/f1'} <= set(final)
