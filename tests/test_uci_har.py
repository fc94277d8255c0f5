"""UCI-HAR: the TFDS builder on raw files written in the official layout at
test time, the readers' errors, the splits and the federated loader."""

import numpy as np
import pytest

tfds = pytest.importorskip('tensorflow_datasets')

from fedmchain_jax.data import uci_har  # pylint: disable=g-import-not-at-top

tfds.disable_progress_bar()

# Subjects of each official split (disjoint, as in the real files) and
# windows per subject and activity.
SUBJECTS = {'train': (1, 3, 5), 'test': (2, 4)}
WINDOWS = 2


def expected_value(split, row, signal, axis):
  """What the writer puts at each sample: split, line, signal and axis
  recoverable from the value."""
  return ((0 if split == 'train' else 1000) + row + 0.1 * signal +
          0.01 * axis)


def make_raw(root, split_subjects=SUBJECTS):
  """The 'UCI HAR Dataset' layout: every subject does every activity."""
  base = root / 'UCI HAR Dataset'
  for split, subjects in split_subjects.items():
    signals = base / split / 'Inertial Signals'
    signals.mkdir(parents=True)
    rows = [(s, a) for s in subjects for a in range(1, 7)
            for _ in range(WINDOWS)]
    (base / split / f'y_{split}.txt').write_text(
        ''.join(f'{a}\n' for _, a in rows))
    (base / split / f'subject_{split}.txt').write_text(
        ''.join(f'{s}\n' for s, _ in rows))
    for signal, stem in enumerate(('body_acc', 'body_gyro')):
      for axis, name in enumerate('xyz'):
        lines = []
        for row, (_, activity) in enumerate(rows):
          value = expected_value(split, row, signal, axis)
          # A ramp over the window, its slope set by the activity.
          samples = value + activity * 1e-3 * np.arange(uci_har.WINDOW)
          lines.append(' '.join(f'{v:.6e}' for v in samples))
        (signals / f'{stem}_{name}_{split}.txt').write_text(
            '\n'.join(lines) + '\n')
  return base


def test_builder_reads_the_official_layout(tmp_path):
  make_raw(tmp_path / 'raw')
  builder = uci_har.build(str(tmp_path / 'raw'), str(tmp_path / 'tfds'))
  train = uci_har.read_split(builder, 'train')
  test = uci_har.read_split(builder, 'test')
  assert len(train['label']) == 3 * 6 * WINDOWS
  assert len(test['label']) == 2 * 6 * WINDOWS
  assert train['acc'].shape == (36, 128, 3)
  assert train['gyro'].dtype == np.float32
  # Line order kept, channels x, y, z, acc before gyro.
  for row in (0, 17, 35):
    for axis in range(3):
      assert train['acc'][row, 0, axis] == pytest.approx(
          expected_value('train', row, 0, axis), abs=1e-4)
      assert train['gyro'][row, 0, axis] == pytest.approx(
          expected_value('train', row, 1, axis), abs=1e-4)
  # Activities 1-6 become labels 0-5 with the official names.
  np.testing.assert_array_equal(train['label'][:12],
                                np.repeat(np.arange(6), WINDOWS))
  slope = np.diff(train['acc'][:, :2, 0], axis=1)[:, 0] / 1e-3
  np.testing.assert_allclose(slope, train['label'] + 1, atol=0.05)
  assert builder.info.features['label'].names == list(uci_har.ACTIVITIES)
  assert set(train['subject']) == {1, 3, 5}
  assert not set(train['subject']) & set(test['subject'])


def test_rebuild_is_skipped_when_cached(tmp_path):
  raw = make_raw(tmp_path / 'raw')
  uci_har.build(str(tmp_path / 'raw'), str(tmp_path / 'tfds'))
  # With the raw files gone, the cache alone serves the same records.
  for path in sorted(raw.rglob('*.txt')):
    path.unlink()
  again = uci_har.build(str(tmp_path / 'raw'), str(tmp_path / 'tfds'))
  assert len(uci_har.read_split(again, 'test')['label']) == 24


@pytest.mark.parametrize('damage, message', [
    ('missing', "UCI-HAR file missing: '{root}/test/Inertial Signals/"
                "body_gyro_y_test.txt'"),
    ('short_line', "UCI-HAR file '{root}/test/Inertial Signals/"
                   "body_gyro_y_test.txt', line 3: expected 128 numbers, "
                   'found 127'),
    ('word', "UCI-HAR file '{root}/test/Inertial Signals/"
             "body_gyro_y_test.txt', line 3: not a number in"),
    ('lines', "UCI-HAR file '{root}/test/Inertial Signals/"
              "body_gyro_y_test.txt' has 23 lines; '{root}/test/y_test.txt' "
              'has 24'),
])
def test_damaged_files_fail_with_one_line_naming_the_file(tmp_path, damage,
                                                          message):
  root = make_raw(tmp_path / 'raw')
  path = root / 'test' / 'Inertial Signals' / 'body_gyro_y_test.txt'
  lines = path.read_text().splitlines()
  if damage == 'missing':
    path.unlink()
  elif damage == 'short_line':
    lines[2] = ' '.join(lines[2].split()[:-1])
    path.write_text('\n'.join(lines) + '\n')
  elif damage == 'word':
    lines[2] = lines[2].replace(lines[2].split()[5], 'nan?', 1)
    path.write_text('\n'.join(lines) + '\n')
  else:
    path.write_text('\n'.join(lines[:-1]) + '\n')
  with pytest.raises(uci_har.RawDataError) as info:
    uci_har.build(str(tmp_path / 'raw'), str(tmp_path / 'tfds'))
  text = str(info.value)
  assert '\n' not in text
  assert text.startswith(message.format(root=root)), text
  # Nothing half-built is left to be mistaken for a cache.
  builder = uci_har.UciHar(data_dir=str(tmp_path / 'tfds'),
                           file_format='array_record')
  assert not builder.is_prepared()


def test_a_missing_folder_names_what_to_put_there(tmp_path):
  with pytest.raises(uci_har.RawDataError,
                     match="must hold the unpacked 'UCI HAR Dataset'"):
    uci_har.build(str(tmp_path / 'nothing'), str(tmp_path / 'tfds'))


def test_natural_clients_are_subjects_and_test_is_other_subjects(tmp_path):
  make_raw(tmp_path / 'raw')
  data, test = uci_har.load_federated(
      str(tmp_path / 'raw'), str(tmp_path / 'tfds'), clients_per_subject=2)
  assert data.num_clients == 3 * 2
  assert sorted(data.modalities) == ['acc', 'gyro']
  assert data.features['acc'].shape[-2:] == (128, 3)
  # Each client holds one subject's windows: half of its 12.
  np.testing.assert_array_equal(data.example_mask.sum(1), [6] * 6)
  assert len(test.labels) == 24
  # Standardized per channel with the train split's statistics.
  train_acc = data.features['acc'][data.example_mask]
  np.testing.assert_allclose(train_acc.mean((0, 1)), 0, atol=1e-4)
  np.testing.assert_allclose(train_acc.std((0, 1)), 1, atol=1e-3)
  assert np.abs(test.features['gyro'].mean()) > 1  # Test: other subjects.


def test_dirichlet_clients_and_validation_split(tmp_path):
  make_raw(tmp_path / 'raw')
  data, validation = uci_har.load_federated(
      str(tmp_path / 'raw'), str(tmp_path / 'tfds'), partition='dirichlet',
      num_clients=4, dirichlet_alpha=0.5, validation_fraction=0.25,
      held_out='validation')
  assert data.num_clients == 4
  assert data.example_mask.sum() + len(validation.labels) == 36
  assert len(validation.labels) >= 4


def test_config_trains_on_the_generated_files(tmp_path):
  # pylint: disable=g-import-not-at-top
  from experiments import train
  from experiments.configs import uci_har_fedavg
  make_raw(tmp_path / 'raw')
  config = uci_har_fedavg.get_config()
  config.algorithm = 'fedmchain'
  config.data.manual_dir = str(tmp_path / 'raw')
  config.data.data_dir = str(tmp_path / 'tfds')
  config.data.clients_per_speaker = 2
  config.model.hidden = (4, 8)
  config.rounds.num_rounds = 2
  config.rounds.cohort_size = 3
  config.rounds.eval_every = 2
  config.client.batch_size = 4
  records = train.train_and_evaluate(config, str(tmp_path / 'run'))
  final = records[-1]
  assert final['round'] == 2 and final['eval/examples'] == 24
  assert 0 <= final['eval/f1'] <= 1
  assert {'eval/accuracy/acc', 'eval/accuracy/gyro'} <= set(final)


def test_study_skips_it_without_files_and_builds_it_with_them(tmp_path,
                                                             monkeypatch):
  # pylint: disable=g-import-not-at-top
  from experiments import registry
  from experiments import study_runs
  from experiments.configs import uci_har_fedavg

  def config_at(manual_dir):
    def get_config():
      config = uci_har_fedavg.get_config()
      config.data.manual_dir = str(manual_dir)
      return config
    return get_config

  entry = registry.DATASETS['uci_har']
  monkeypatch.setitem(registry.DATASETS, 'uci_har', entry._replace(
      config=config_at(tmp_path / 'absent')))
  reason = study_runs.missing_data('uci_har', str(tmp_path / 'tfds'))
  assert reason.startswith('UCI-HAR raw files not found')
  make_raw(tmp_path / 'raw')
  monkeypatch.setitem(registry.DATASETS, 'uci_har', entry._replace(
      config=config_at(tmp_path / 'raw')))
  assert study_runs.missing_data('uci_har', str(tmp_path / 'tfds')) is None
  config = study_runs.study_config('uci_har', 'fedavg', 5.0, 0.0, 10,
                              str(tmp_path / 'tfds'))
  assert (config.data.partition, config.data.num_clients) == ('dirichlet',
                                                              105)
