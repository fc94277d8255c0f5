"""Raw AV-digits inputs: FSDD wav files, MNIST idx files, spectrograms, pairing.

NumPy only (no TensorFlow, no TFDS), so the same code serves the TFDS builder
(`av_digits.py`), the TFDS-catalog path and the tests.

Audio features are log-mel spectrograms of a fixed size: each clip is cut or
zero-padded to `CLIP_SAMPLES` (1 s at 8 kHz), split into `NUM_FRAMES`
Hann-windowed frames of `FRAME` samples with no overlap, and each frame's
512-point power spectrum is pooled by `NUM_MELS` triangular mel filters
(HTK mel scale, 0 to 4 kHz), then log(energy + 1e-6).
"""

import functools
import gzip
import os
import re
import wave
from typing import NamedTuple, Sequence

import numpy as np

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000
FRAME = 400
NUM_FRAMES = CLIP_SAMPLES // FRAME  # 20
NUM_MELS = 20
FFT_SIZE = 512
SPECTROGRAM_SHAPE = (NUM_FRAMES, NUM_MELS)
FSDD_NAME = re.compile(r'^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$')
FSDD_URL = 'https://github.com/Jakobovski/free-spoken-digit-dataset'
MNIST_URL = 'the MNIST site or TFDS `mnist`'
TEST_TAKES = range(0, 5)  # FSDD convention: takes 0-4 test, 5-49 train.
IMAGE_FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte')
TEST_IMAGE_FILES = ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


class RawDataError(ValueError):
  """A missing or unreadable raw file; the message names it."""


class Clip(NamedTuple):
  label: int
  speaker: str
  take: int
  path: str


# ---------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------


def find_clips(directory: str) -> list[Clip]:
  """FSDD clips `{digit}_{speaker}_{take}.wav` in `directory`, sorted."""
  if not os.path.isdir(directory):
    raise RawDataError(
        f'FSDD recordings not found: expected a directory {directory!r} with '
        f'{{digit}}_{{speaker}}_{{take}}.wav files (get them from {FSDD_URL}, '
        'folder recordings/)')
  clips = []
  for name in sorted(os.listdir(directory)):
    match = FSDD_NAME.match(name)
    if match:
      clips.append(Clip(int(match.group(1)), match.group(2),
                        int(match.group(3)), os.path.join(directory, name)))
  if not clips:
    raise RawDataError(
        f'no FSDD wav files ({{digit}}_{{speaker}}_{{take}}.wav) in '
        f'{directory!r} (get them from {FSDD_URL}, folder recordings/)')
  return clips


def read_wav(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A mono 16-bit wav file of `sample_rate` Hz as float32 samples in
  [-1, 1)."""
  try:
    with wave.open(path, 'rb') as f:
      channels, width, rate = (f.getnchannels(), f.getsampwidth(),
                               f.getframerate())
      declared = f.getnframes()
      frames = f.readframes(declared)
  except (wave.Error, EOFError, OSError) as e:
    reason = str(e) or ('the file ends inside its header' if isinstance(
        e, EOFError) else type(e).__name__)
    raise RawDataError(f'cannot read wav file {path!r}: {reason}') from None
  if len(frames) < declared * channels * width:
    # A cut file: its header promises more samples than it holds.
    raise RawDataError(
        f'wav file {path!r} is cut short: its header declares {declared} '
        f'samples, the file holds {len(frames) // max(channels * width, 1)}')
  if (channels, width, rate) != (1, 2, sample_rate):
    raise RawDataError(
        f'wav file {path!r} is {channels} channel(s), {8 * width}-bit, '
        f'{rate} Hz; expected mono 16-bit {sample_rate} Hz')
  if not frames:
    raise RawDataError(f'wav file {path!r} holds no samples')
  return np.frombuffer(frames, '<i2').astype(np.float32) / 32768.0


def _open_idx(directory: str, stem: str) -> tuple[str, bytes]:
  for name in (stem, stem + '.gz'):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      try:
        if name.endswith('.gz'):
          with gzip.open(path, 'rb') as f:
            return path, f.read()
        with open(path, 'rb') as f:
          return path, f.read()
      except (OSError, EOFError) as e:
        raise RawDataError(f'cannot read idx file {path!r}: {e}') from None
  raise RawDataError(
      f'MNIST file not found: expected {os.path.join(directory, stem)}[.gz] '
      f'(idx format, from {MNIST_URL})')


def read_idx(directory: str, stem: str, magic: int) -> np.ndarray:
  """An idx array (uint8 images or labels) after checking its magic number."""
  path, payload = _open_idx(directory, stem)
  if len(payload) < 4 or int.from_bytes(payload[:4], 'big') != magic:
    found = payload[:4].hex() if len(payload) >= 4 else 'a truncated header'
    raise RawDataError(
        f'idx file {path!r} has magic number {found}, expected '
        f'{magic:08x}: not an MNIST {"image" if magic == 2051 else "label"} '
        'file')
  rank = payload[3]
  header = 4 + 4 * rank
  shape = tuple(int.from_bytes(payload[4 + 4 * i:8 + 4 * i], 'big')
                for i in range(rank))
  if len(payload) != header + int(np.prod(shape)):
    raise RawDataError(f'idx file {path!r} is truncated or too long for its '
                       f'shape {shape}')
  return np.frombuffer(payload, np.uint8, offset=header).reshape(shape)


def read_mnist(directory: str, test: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
  """(images [X, 28, 28] uint8, labels [X] uint8) from idx files."""
  if not os.path.isdir(directory):
    raise RawDataError(
        f'MNIST directory not found: expected {directory!r} with '
        f'{IMAGE_FILES[0]}[.gz] and {IMAGE_FILES[1]}[.gz] (from {MNIST_URL})')
  images_stem, labels_stem = TEST_IMAGE_FILES if test else IMAGE_FILES
  images = read_idx(directory, images_stem, 2051)
  labels = read_idx(directory, labels_stem, 2049)
  if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
    raise RawDataError(
        f'MNIST files in {directory!r} disagree: {images.shape[0]} images of '
        f'{images.shape[1:]} but {labels.shape[0]} labels')
  if labels.max(initial=0) > 9:
    raise RawDataError(f'MNIST labels in {directory!r} go up to '
                       f'{labels.max()}; expected digits 0-9')
  return images, labels


def has_mnist_test(directory: str) -> bool:
  return any(os.path.exists(os.path.join(directory, TEST_IMAGE_FILES[0] + s))
             for s in ('', '.gz'))


# ---------------------------------------------------------------------------
# Features.
# ---------------------------------------------------------------------------


@functools.cache
def mel_filterbank(sample_rate: int = SAMPLE_RATE, num_mels: int = NUM_MELS,
                   fft_size: int = FFT_SIZE) -> np.ndarray:
  """[fft_size // 2 + 1, num_mels] triangular filters on the HTK mel scale."""
  to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
  to_hz = lambda m: 700.0 * (10.0**(m / 2595.0) - 1.0)
  edges = to_hz(np.linspace(0.0, to_mel(sample_rate / 2), num_mels + 2))
  bins = np.linspace(0.0, sample_rate / 2, fft_size // 2 + 1)
  low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  rising = (bins[None] - low) / (centre - low)
  falling = (high - bins[None]) / (high - centre)
  return np.maximum(0.0, np.minimum(rising, falling)).T


def fit_clip(samples: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
  """Cuts or zero-pads a clip to `length` samples."""
  clip = np.zeros(length, np.float32)
  clip[:min(len(samples), length)] = samples[:length]
  return clip


def log_mel(samples: np.ndarray, sample_rate: int = SAMPLE_RATE,
            num_frames: int = NUM_FRAMES, frame: int = FRAME,
            num_mels: int = NUM_MELS, fft_size: int = FFT_SIZE) -> np.ndarray:
  """[num_frames, num_mels] float32 log-mel spectrogram of one clip: its
  first num_frames x frame samples (zero-padded), in non-overlapping
  Hann-windowed frames. The defaults are AV-digits'."""
  frames = (fit_clip(samples, num_frames * frame).reshape(num_frames, frame)
            * np.hanning(frame))
  power = np.abs(np.fft.rfft(frames, fft_size))**2
  return np.log(power @ mel_filterbank(sample_rate, num_mels, fft_size) +
                1e-6).astype(np.float32)


def add_noise(samples: np.ndarray, snr_db: float,
              rng: np.random.Generator) -> np.ndarray:
  """White noise at `snr_db` dB below the clip's mean power."""
  power = np.mean(samples**2) + 1e-12
  noise = rng.normal(size=samples.shape) * np.sqrt(power / 10**(snr_db / 10))
  return (samples + noise).astype(np.float32)


def remove_pca_energy(train: np.ndarray, others: Sequence[np.ndarray],
                      energy_removed: float) -> list[np.ndarray]:
  """Weakens images as AV-MNIST did: keeps the leading principal components
  that carry (1 - energy_removed) of the train images' variance.

  Args:
    train: [X, 28, 28] uint8 images the components are fitted on.
    others: more image arrays projected with the same components.
    energy_removed: in [0, 1); 0 returns the images unchanged.

  Returns:
    [train, *others] reconstructed, clipped and rounded to uint8.
  """
  arrays = [train, *others]
  if energy_removed <= 0:
    return arrays
  flat = train.reshape(len(train), -1).astype(np.float64)
  mean = flat.mean(0)
  _, singular, components = np.linalg.svd(flat - mean, full_matrices=False)
  energy = np.cumsum(singular**2) / np.sum(singular**2)
  keep = int(np.searchsorted(energy, 1.0 - energy_removed) + 1)
  basis = components[:keep]
  out = []
  for images in arrays:
    x = images.reshape(len(images), -1).astype(np.float64) - mean
    rebuilt = (x @ basis.T) @ basis + mean
    out.append(np.clip(np.rint(rebuilt), 0, 255).astype(np.uint8).reshape(
        images.shape))
  return out


# ---------------------------------------------------------------------------
# Pairing.
# ---------------------------------------------------------------------------


def pair_by_label(clip_labels: np.ndarray, image_labels: np.ndarray,
                  seed: int) -> np.ndarray:
  """For each clip, the index of an image with the same label.

  Per digit, the images are shuffled (seeded) and dealt to that digit's clips
  in order, wrapping round if there are fewer images than clips, so images
  repeat only when they must.
  """
  rng = np.random.default_rng([seed, 7])
  chosen = np.empty(len(clip_labels), np.int64)
  for digit in np.unique(clip_labels):
    clips = np.flatnonzero(clip_labels == digit)
    pool = rng.permutation(np.flatnonzero(image_labels == digit))
    if pool.size == 0:
      raise RawDataError(f'no MNIST image of digit {digit} to pair with its '
                         f'{clips.size} clips')
    chosen[clips] = pool[np.arange(clips.size) % pool.size]
  return chosen


def split_images(image_labels: np.ndarray, test_share: float,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Disjoint (train, test) image indices, `test_share` of each digit."""
  rng = np.random.default_rng([seed, 11])
  train, test = [], []
  for digit in np.unique(image_labels):
    members = rng.permutation(np.flatnonzero(image_labels == digit))
    cut = max(1, int(round(test_share * members.size)))
    test.append(members[:cut])
    train.append(members[cut:])
  return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
