"""Orbax checkpoints of the run state, and the metrics.jsonl writer.

These are the library's only file writers; the launcher decides where.
"""

import json
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
        # Synchronous: the next round donates the arrays being saved.
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(
        os.path.abspath(directory), options=options)

  def latest_round(self) -> int | None:
    return self._manager.latest_step()

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


class MetricsWriter:
  """Appends one JSON object per line to `path`, flushed to disk each time."""

  def __init__(self, path: str):
    self._path = path

  def truncate_after(self, round_number: int) -> None:
    """Drops lines of rounds after `round_number` (work lost to a restart)."""
    if not os.path.exists(self._path):
      return
    with open(self._path) as f:
      lines = [line for line in f if line.strip()]
    kept = [line for line in lines if json.loads(line)['round'] <= round_number]
    if len(kept) != len(lines):
      tmp = self._path + '.tmp'
      with open(tmp, 'w') as f:
        f.writelines(kept)
      os.replace(tmp, self._path)

  def write(self, record: dict[str, Any]) -> None:
    with open(self._path, 'a') as f:
      f.write(json.dumps(record, sort_keys=True) + '\n')
      f.flush()
      os.fsync(f.fileno())

  def read(self) -> list[dict[str, Any]]:
    if not os.path.exists(self._path):
      return []
    with open(self._path) as f:
      return [json.loads(line) for line in f if line.strip()]
