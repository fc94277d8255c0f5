"""A run's metrics on disk: metrics.jsonl and TensorBoard event files.

With `checkpointing`, the library's only file writers; the launcher decides
where.
"""

import glob
import json
import os
import struct
import time
from typing import Any, Iterator


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


def read_event_scalars(path: str) -> Iterator[tuple[float, int, str, float]]:
  """(wall time, step, tag, value) of each scalar in a TensorBoard event
  file, in order; a record cut short by a crash ends the file."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  with open(path, 'rb') as f:
    while True:
      header = f.read(12)  # Length (8 bytes) and its CRC (4).
      if len(header) < 12:
        return
      length = struct.unpack('<Q', header[:8])[0]
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        return
      event = event_pb2.Event.FromString(data)
      for value in event.summary.value:
        yield event.wall_time, event.step, value.tag, value.simple_value


class TensorBoardWriter:
  """Scalars to TensorBoard event files (tensorboardX: no TensorFlow).

  Args:
    logdir: the event files' folder.
    purge_after: on a (re)started run, the last round kept: the scalars of
      later rounds written before the restart are dropped, so that every
      step is in the event files once (as in metrics.jsonl). None keeps
      whatever is there.
  """

  def __init__(self, logdir: str, purge_after: int | None = None):
    import tensorboardX  # pylint: disable=g-import-not-at-top
    old = sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*')))
    kept = []
    if purge_after is not None:
      kept = [e for path in old for e in read_event_scalars(path)
              if e[1] <= purge_after]
    # A name no earlier file has, even one started in the same second.
    self._writer = tensorboardX.SummaryWriter(
        logdir, filename_suffix=f'.{os.getpid()}.{time.time_ns()}')
    if purge_after is not None:
      # The kept scalars go into the new file before the old files go.
      for wall_time, step, tag, value in kept:
        self._writer.add_scalar(tag, value, global_step=step,
                                walltime=wall_time)
      self._writer.flush()
      for path in old:
        os.remove(path)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, value, global_step=step)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
