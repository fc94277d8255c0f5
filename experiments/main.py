r"""Launches a federated experiment.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/fedmchain_default [--config.client.lr=0.1 ...]

Writes DIR/metrics.jsonl (one JSON object per evaluation), DIR/checkpoints/
(orbax) and DIR/config.json; rerunning with the same workdir resumes.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fedmchain_jax import data as fmc_data
from experiments import config_checks
from experiments import train

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to an experiments/configs/*.py file.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for metrics, checkpoints, config.')
flags.mark_flags_as_required(['config', 'workdir'])


def _check_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, '.write_probe')
    with open(probe, 'w'):
      pass
    os.remove(probe)
  except OSError as e:
    sys.exit(f'error: --workdir={workdir!r} is not a writable directory '
             f'({e.strerror})')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.INFO)
  # Orbax narrates every save at INFO; keep the console to our progress lines.
  logging.get_absl_handler().addFilter(
      lambda record: '/orbax/' not in record.pathname or
      record.levelno >= logging.converter.STANDARD_WARNING)
  try:
    config_checks.validate(_CONFIG.value)
  except config_checks.ConfigError as e:
    sys.exit(f'error: {e}')
  _check_workdir(_WORKDIR.value)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except config_checks.ConfigError as e:  # Checks that need the data.
    sys.exit(f'error: {e}')
  except (train.ResumeError, fmc_data.DataError) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
