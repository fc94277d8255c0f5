"""Orbax checkpoints of the run state.

With `metrics_io`, the library's only file writers; the launcher decides
where.
"""

import os
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores a pytree per round under `directory` with orbax.

  Args:
    directory: where checkpoints go (created if missing).
    save_every: save when the round number is a multiple of this (the last
      round is saved with `force=True`).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, save_every: int, max_to_keep: int = 2):
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=max_to_keep, create=True,
        cleanup_tmp_directories=True,
        # Synchronous: the next round donates the arrays being saved.
        enable_async_checkpointing=False)
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_round(self) -> int | None:
    return self._manager.latest_step()

  def rounds(self) -> list[int]:
    """Rounds with a complete checkpoint, oldest first."""
    return sorted(self._manager.all_steps())

  def restore_latest_valid(self, target: Any, warn=None,
                           quarantine: str | None = None
                           ) -> tuple[int | None, Any]:
    """Restores the newest checkpoint that reads back, newest first.

    A checkpoint that fails to restore (truncated or corrupt files) is
    reported through `warn(message)` and skipped; with `quarantine`, the
    skipped ones newer than the restored one are moved there (nothing is
    deleted), so later saves of those rounds can proceed.

    Returns:
      (round, tree), or (None, None) when there is no checkpoint.

    Raises:
      ValueError: checkpoints exist but none restores (its message names the
        last error), e.g. when the model's shapes changed.
    """
    errors = []
    for round_number in reversed(self.rounds()):
      try:
        restored = self.restore(target, round_number)
      except Exception as e:  # pylint: disable=broad-except
        message = str(e).strip().splitlines()[0] if str(e).strip() else (
            type(e).__name__)
        errors.append((round_number, message))
        if warn is not None:
          warn(f'checkpoint of round {round_number} in {self.directory} '
               f'cannot be restored ({message[:200]}); trying the one before')
        continue
      if errors and quarantine is not None:
        os.makedirs(quarantine, exist_ok=True)
        for bad, _ in errors:
          target_dir = os.path.join(quarantine, str(bad))
          if os.path.exists(target_dir):
            target_dir += f'.{len(os.listdir(quarantine))}'
          os.replace(os.path.join(self.directory, str(bad)), target_dir)
          if warn is not None:
            warn(f'moved the unreadable checkpoint of round {bad} to '
                 f'{target_dir}')
        self._manager.reload()
      return round_number, restored
    if errors:
      round_number, message = errors[-1]
      raise ValueError(f'no checkpoint in {self.directory} can be restored; '
                       f'round {round_number}: {message[:300]}')
    return None, None

  def restore(self, target: Any, round_number: int | None = None) -> Any:
    """Restores round `round_number` (default latest) shaped like `target`."""
    if round_number is None:
      round_number = self.latest_round()
    return self._manager.restore(
        round_number, args=ocp.args.StandardRestore(target))

  def save(self, round_number: int, tree: Any, force: bool = False) -> bool:
    return self._manager.save(
        round_number, args=ocp.args.StandardSave(tree), force=force)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
