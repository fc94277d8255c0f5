"""CREMA-D: 91 actors speaking 12 sentences with 6 emotions, audio and video,
as a TensorFlow Datasets builder, and its federated loader.

Raw files (`manual_dir`): the official repository's layout,
  AudioWAV/{actor}_{sentence}_{emotion}_{level}.wav  (16 kHz mono 16-bit)
  VideoFlash/{actor}_{sentence}_{emotion}_{level}.flv
e.g. AudioWAV/1001_DFA_ANG_XX.wav; emotion one of ANG, DIS, FEA, HAP, NEU,
SAD. Without a VideoFlash folder the dataset is built audio-only (config
'audio'; the log says so); with one, every clip needs its video.

Records: one per clip; features audio [100, 40] float32 (log-mel frames of
the first 48,000 samples: 100 non-overlapping frames of 480 samples, 40 mel
bands), video
[32, 32, 3] uint8 (3 evenly spaced frames, grey, the centre square
downsampled by area; frames as channels; config 'audio_video' only), label
(ClassLabel: EMOTIONS), actor (int32, e.g. 1001) and clip_id (int32, the
clip's index in the sorted file list). Videos are decoded with
imageio-ffmpeg, which ships its own ffmpeg (the `data` extra).

Splits, speaker-disjoint: 'test' holds every clip of every fifth actor in
sorted order (actors[4::5], 18 of 91), 'train' the other 73 actors.
Clients (`load_federated`): one per actor ('natural', each optionally split
`clients_per_actor` ways) or 'dirichlet' over the labels.
"""

import dataclasses
import functools
import logging
import os
import re

import numpy as np

from fedmchain_jax.data import av_raw
from fedmchain_jax.data import builders
from fedmchain_jax.data import federated

URL = 'https://github.com/CheyneyComputerScience/CREMA-D'
LICENSE = 'Open Database License v1.0 (contents: Database Contents License)'
EMOTIONS = ('ANG', 'DIS', 'FEA', 'HAP', 'NEU', 'SAD')
LABELS = ('anger', 'disgust', 'fear', 'happy', 'neutral', 'sad')
NAME = re.compile(r'^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$')
SAMPLE_RATE = 16000
AUDIO_SAMPLES = 48000  # Of each clip, from its start.
AUDIO_FRAME = 480  # Samples a frame.
AUDIO_MELS = 40
AUDIO_SHAPE = (AUDIO_SAMPLES // AUDIO_FRAME, AUDIO_MELS)
VIDEO_FRAMES = 3
VIDEO_SIZE = 32
VIDEO_SHAPE = (VIDEO_SIZE, VIDEO_SIZE, VIDEO_FRAMES)
TEST_ACTORS = slice(4, None, 5)  # Of the sorted actors.
VERSION = '1.0.0'
RawDataError = av_raw.RawDataError


def find_clips(manual_dir: str) -> tuple[list[tuple[str, str, str]], bool]:
  """([(stem, wav path, flv path or '')] sorted by stem, has videos).

  Raises:
    RawDataError: no AudioWAV folder, a file name outside the official
      pattern, or (with a VideoFlash folder) a clip without its video.
  """
  manual_dir = os.path.expanduser(manual_dir)
  audio_dir = os.path.join(manual_dir, 'AudioWAV')
  video_dir = os.path.join(manual_dir, 'VideoFlash')
  if not os.path.isdir(audio_dir):
    raise RawDataError(
        f'CREMA-D raw files not found: expected {audio_dir}/ with '
        f'{{actor}}_{{sentence}}_{{emotion}}_{{level}}.wav files (from {URL})')
  stems = []
  for name in sorted(os.listdir(audio_dir)):
    if not name.endswith('.wav'):
      continue
    stem = name[:-len('.wav')]
    match = NAME.match(stem)
    if match is None or match.group(3) not in EMOTIONS:
      raise RawDataError(
          f'CREMA-D file {os.path.join(audio_dir, name)!r} is not named '
          '{actor}_{sentence}_{emotion}_{level}.wav with emotion one of '
          f'{", ".join(EMOTIONS)}')
    stems.append(stem)
  if not stems:
    raise RawDataError(f'CREMA-D: no .wav files in {audio_dir}')
  has_video = os.path.isdir(video_dir)
  clips = []
  for stem in stems:
    video = os.path.join(video_dir, stem + '.flv') if has_video else ''
    if has_video and not os.path.isfile(video):
      raise RawDataError(
          f'CREMA-D video missing: {video!r} (every clip in AudioWAV needs '
          'its video when VideoFlash exists; remove VideoFlash for '
          'audio-only)')
    clips.append((stem, os.path.join(audio_dir, stem + '.wav'), video))
  return clips, has_video


def audio_features(samples: np.ndarray) -> np.ndarray:
  """[100, 40] log-mel frames of a clip's first AUDIO_SAMPLES samples."""
  return av_raw.log_mel(samples, SAMPLE_RATE, AUDIO_SHAPE[0], AUDIO_FRAME,
                        AUDIO_MELS, fft_size=512)


def _area_resize(frame: np.ndarray, size: int) -> np.ndarray:
  """The centre square of a [H, W] frame, averaged down to [size, size]."""
  h, w = frame.shape
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  square = frame[top:top + side, left:left + side].astype(np.float64)
  edges = np.linspace(0, side, size + 1).astype(int)[:-1]
  counts = np.diff(np.append(edges, side))
  rows = np.add.reduceat(square, edges, axis=0) / counts[:, None]
  return np.add.reduceat(rows, edges, axis=1) / counts[None, :]


def read_video(path: str) -> np.ndarray:
  """[32, 32, 3] uint8: 3 evenly spaced grey frames of a video.

  Raises:
    RawDataError: the file cannot be decoded or has no frames.
  """
  import imageio_ffmpeg  # pylint: disable=g-import-not-at-top
  try:
    reader = imageio_ffmpeg.read_frames(path, pix_fmt='gray',
                                        bits_per_pixel=8)
    meta = next(reader)
    width, height = meta['size']
    frames = [np.frombuffer(b, np.uint8).reshape(height, width)
              for b in reader]
  except (OSError, RuntimeError, StopIteration, ValueError) as e:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else (
        type(e).__name__)
    raise RawDataError(f'cannot decode CREMA-D video {path!r}: {reason}'
                       ) from None
  if not frames:
    raise RawDataError(f'CREMA-D video {path!r} holds no frames')
  picks = np.linspace(0, len(frames) - 1, VIDEO_FRAMES).round().astype(int)
  return np.stack([_area_resize(frames[i], VIDEO_SIZE) for i in picks],
                  -1).round().astype(np.uint8)


def read_raw(manual_dir: str, with_video: bool
             ) -> dict[str, dict[str, np.ndarray]]:
  """{'train' | 'test': arrays}, decoded from the raw files."""
  clips, _ = find_clips(manual_dir)
  actors = sorted({int(stem[:4]) for stem, _, _ in clips})
  test_actors = set(actors[TEST_ACTORS])
  rows = {'train': [], 'test': []}
  for clip_id, (stem, wav, flv) in enumerate(clips):
    actor = int(stem[:4])
    record = {'audio': audio_features(av_raw.read_wav(wav, SAMPLE_RATE)),
              'label': EMOTIONS.index(stem.split('_')[2]),
              'actor': actor, 'clip_id': clip_id}
    if with_video:
      record['video'] = read_video(flv)
    rows['test' if actor in test_actors else 'train'].append(record)
  shapes = {'audio': AUDIO_SHAPE, 'video': VIDEO_SHAPE}
  dtypes = {'audio': np.float32, 'label': np.int64, 'actor': np.int32,
            'clip_id': np.int32}
  if with_video:
    dtypes['video'] = np.uint8
  return {split: {k: (np.stack([r[k] for r in records]).astype(dtype)
                      if records else
                      np.zeros((0,) + shapes.get(k, ()), dtype))
                  for k, dtype in dtypes.items()}
          for split, records in rows.items()}


@functools.cache
def builder_classes():
  """(CremaDConfig, CremaD), defined (and registered with TFDS) once."""
  tfds = builders.tfds()

  @dataclasses.dataclass
  class CremaDConfig(tfds.core.BuilderConfig):
    with_video: bool = True

  class CremaD(tfds.core.GeneratorBasedBuilder):
    """CREMA-D emotions: log-mel audio and downsampled face frames."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = {'1.0.0': 'First release.'}
    BUILDER_CONFIGS = [
        CremaDConfig(name='audio_video', version=VERSION, with_video=True),
        CremaDConfig(name='audio', version=VERSION, with_video=False)]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f'Put the CREMA-D AudioWAV/ and (optionally) VideoFlash/ folders '
        f'({URL}) in <manual_dir>.')

    def _info(self):
      features = {
          'audio': tfds.features.Tensor(shape=AUDIO_SHAPE, dtype=np.float32),
          'label': tfds.features.ClassLabel(names=LABELS),
          'actor': tfds.features.Scalar(dtype=np.int32),
          'clip_id': tfds.features.Scalar(dtype=np.int32),
      }
      if self.builder_config.with_video:
        features['video'] = tfds.features.Tensor(shape=VIDEO_SHAPE,
                                                 dtype=np.uint8)
      return self.dataset_info_from_configs(
          description=__doc__,
          features=tfds.features.FeaturesDict(features),
          homepage=URL, license=LICENSE)

    def _split_generators(self, dl_manager):
      arrays = read_raw(dl_manager.manual_dir,
                        self.builder_config.with_video)
      return {split: self._generate_examples(arrays[split])
              for split in ('train', 'test')}

    def _generate_examples(self, arrays):
      for i in range(len(arrays['label'])):
        yield int(arrays['clip_id'][i]), {k: v[i] for k, v in arrays.items()}

  return CremaDConfig, CremaD


def __getattr__(name: str):
  if name in ('CremaD', 'CremaDConfig'):
    config_class, builder_class = builder_classes()
    return builder_class if name == 'CremaD' else config_class
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def build(manual_dir: str, data_dir: str, with_video: bool | None = None):
  """Builds (once; later calls reuse `data_dir`) and returns the builder.

  with_video: None reads videos when `manual_dir` has a VideoFlash folder
  (and says in the log when it has none); True requires them.
  """
  _, CremaD = builder_classes()  # pylint: disable=invalid-name
  data_dir = os.path.expanduser(data_dir)
  found = None
  if with_video is None:
    if os.path.isdir(os.path.join(os.path.expanduser(manual_dir),
                                  'AudioWAV')):
      found = os.path.isdir(os.path.join(os.path.expanduser(manual_dir),
                                         'VideoFlash'))
    else:
      # No raw files: whichever config is cached serves.
      found = CremaD(config='audio_video', data_dir=data_dir,
                     file_format='array_record').is_prepared()
    with_video = found
  builder = CremaD(config='audio_video' if with_video else 'audio',
                   data_dir=data_dir, file_format='array_record')
  if not builder.is_prepared():
    _, has_video = find_clips(manual_dir)  # A clear error before TFDS.
    if with_video and not has_video:
      raise RawDataError(
          f'CREMA-D videos not found: expected {manual_dir}/VideoFlash/ with '
          'the .flv files')
  if found is False:
    logging.getLogger('absl').info(
        'CREMA-D: no VideoFlash folder in %s, so audio only (put the .flv '
        'files there for the video modality).', manual_dir)
  return builders.prepare(builder, manual_dir,
                          f'crema_d ({builder.builder_config.name})')


def read_split(builder, split: str) -> dict[str, np.ndarray]:
  """A whole split as arrays, in clip order."""
  return builders.read_split(builder, split, 'clip_id')


def load_federated(manual_dir: str, data_dir: str, *, seed: int = 0,
                   partition: str = 'natural', clients_per_actor: int = 1,
                   num_clients: int = 73, dirichlet_alpha: float = 1.0,
                   missing_modality_rate: float = 0.0, min_examples: int = 2,
                   validation_fraction: float = 0.0, held_out: str = 'test',
                   with_video: bool | None = None,
                   ) -> tuple[federated.FederatedData, federated.TestData]:
  """CREMA-D as federated train data and the speaker-disjoint test split.

  Arguments as `av_digits.load_federated` (`clients_per_actor` in place of
  clients per speaker; `with_video` as `build`). Returns modality 'audio'
  ([100, 40], standardized with the train split's statistics) and, with
  videos, 'video' ([32, 32, 3] in [0, 1]).
  """
  federated.check_held_out(held_out)
  builder = build(manual_dir, data_dir, with_video)
  train = read_split(builder, 'train')
  test = read_split(builder, 'test') if held_out == 'test' else None
  modalities = ('audio', 'video') if 'video' in train else ('audio',)
  mean, std = train['audio'].mean(), train['audio'].std() + 1e-6

  def features(split):
    out = {'audio': ((split['audio'] - mean) / std).astype(np.float32)}
    if 'video' in split:
      out['video'] = split['video'].astype(np.float32) / 255.0
    return out

  return builders.federate(
      train, test, features, modalities, 'actor', seed=seed,
      partition=partition, clients_per_group=clients_per_actor,
      num_clients=num_clients, dirichlet_alpha=dirichlet_alpha,
      missing_modality_rate=missing_modality_rate, min_examples=min_examples,
      validation_fraction=validation_fraction, held_out=held_out)
