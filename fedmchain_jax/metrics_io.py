"""A run's metrics on disk: metrics.jsonl and TensorBoard event files.

With `checkpointing`, the library's only file writers; the launcher decides
where.
"""

import json
import os
from typing import Any


class MetricsWriter:
  """Appends one JSON object per line to `path`, flushed to disk each time."""

  def __init__(self, path: str):
    self._path = path

  def truncate_after(self, round_number: int) -> None:
    """Drops lines of rounds after `round_number` (work lost to a restart)
    and a last line cut short by a crash."""
    if not os.path.exists(self._path):
      return
    with open(self._path) as f:
      lines = [line for line in f if line.strip()]
    kept = []
    for line in lines:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue  # Cut short by a crash mid-write.
      if record['round'] <= round_number and line.endswith('\n'):
        kept.append(line)
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


class TensorBoardWriter:
  """Scalars to TensorBoard event files (tensorboardX: no TensorFlow).

  Args:
    logdir: the event files' folder.
    purge_after: on a resumed run, the last round kept; TensorBoard hides
      events of later rounds written before the restart.
  """

  def __init__(self, logdir: str, purge_after: int | None = None):
    import tensorboardX  # pylint: disable=g-import-not-at-top
    self._writer = tensorboardX.SummaryWriter(
        logdir, purge_step=None if not purge_after else purge_after + 1)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, value, global_step=step)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
