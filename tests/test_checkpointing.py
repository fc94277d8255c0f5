"""The library's checkpointer: what it keeps, restores, reports and sets aside."""

import os

import numpy as np
import pytest

from fedmchain_jax import checkpointing


def _saved(directory, rounds=(1, 2, 3), **options):
  checkpointer = checkpointing.Checkpointer(str(directory), 1, **options)
  for r in rounds:
    checkpointer.save(r, {'a': np.full(3, float(r))})
  return checkpointer


def _damage(directory, round_number):
  for root, _, files in os.walk(os.path.join(directory, str(round_number))):
    for name in files:
      if not name.endswith('.json') and 'metadata' not in name:
        with open(os.path.join(root, name), 'r+b') as f:
          f.truncate(3)


def test_keeps_the_two_newest_and_restores_the_latest(tmp_path):
  checkpointer = _saved(tmp_path / 'c')
  assert checkpointer.rounds() == [2, 3]
  assert checkpointer.latest_round() == 3
  np.testing.assert_array_equal(
      checkpointer.restore({'a': np.zeros(3)})['a'], [3.0, 3.0, 3.0])
  checkpointer.close()


def test_an_unreadable_checkpoint_is_reported_and_set_aside(tmp_path):
  directory, quarantine = tmp_path / 'c', tmp_path / 'unreadable'
  checkpointer = _saved(directory)
  # A clean restore sets nothing aside and makes no quarantine folder.
  warnings = []
  assert checkpointer.restore_latest_valid(
      {'a': np.zeros(3)}, warnings.append, str(quarantine))[0] == 3
  assert warnings == [] and not quarantine.exists()
  _damage(directory, 3)
  os.makedirs(quarantine / '3')  # An earlier round 3 set aside: kept.
  round_number, tree = checkpointer.restore_latest_valid(
      {'a': np.zeros(3)}, warnings.append, str(quarantine))
  assert round_number == 2
  np.testing.assert_array_equal(tree['a'], [2.0, 2.0, 2.0])
  assert warnings[0].startswith(
      f'checkpoint of round 3 in {directory} cannot be restored (')
  assert warnings[0].endswith('); trying the one before')
  assert warnings[1] == (f'moved the unreadable checkpoint of round 3 to '
                         f'{quarantine}/3.1')
  assert sorted(os.listdir(quarantine)) == ['3', '3.1']
  assert checkpointer.rounds() == [2]
  checkpointer.close()


def test_restore_errors_are_reported_by_their_first_line_cut_short(
    tmp_path, monkeypatch):
  checkpointer = _saved(tmp_path / 'c', max_to_keep=3)

  def fail(target, round_number=None):
    if round_number == 2:
      raise ValueError('')  # No message: its type stands in.
    raise ValueError('x' * 500 + '\nsecond line')

  monkeypatch.setattr(checkpointer, 'restore', fail)
  warnings = []
  with pytest.raises(ValueError) as error:
    checkpointer.restore_latest_valid({'a': np.zeros(3)}, warnings.append)
  assert warnings == [
      f'checkpoint of round {r} in {tmp_path / "c"} cannot be restored '
      f'({why}); trying the one before'
      for r, why in ((3, 'x' * 200), (2, 'ValueError'), (1, 'x' * 200))]
  # The error names the oldest checkpoint tried.
  assert str(error.value) == (f'no checkpoint in {tmp_path / "c"} can be '
                              f'restored; round 1: {"x" * 300}')
  checkpointer.close()


def test_no_checkpoint_restores_nothing(tmp_path):
  checkpointer = checkpointing.Checkpointer(str(tmp_path / 'c'), 1)
  assert checkpointer.restore_latest_valid({'a': np.zeros(3)}) == (None, None)
  checkpointer.close()


def test_saves_every_nth_round_unless_forced(tmp_path):
  checkpointer = checkpointing.Checkpointer(str(tmp_path / 'c'), 2)
  saved = [checkpointer.save(r, {'a': np.full(3, float(r))})
           for r in (2, 3, 4)]
  assert saved == [True, False, True]
  assert checkpointer.save(5, {'a': np.full(3, 5.0)}, force=True)
  assert checkpointer.rounds() == [4, 5]
  checkpointer.close()


def test_the_directory_is_made_when_missing(tmp_path):
  directory = tmp_path / 'new' / 'checkpoints'
  checkpointer = _saved(directory, rounds=(1,))
  checkpointer.close()
  assert checkpointing.Checkpointer(str(directory), 1).rounds() == [1]
