r"""Launches a federated experiment.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/fedmchain_default [--config.client.lr=0.1 ...]

Writes DIR/metrics.jsonl (one JSON object per evaluation), DIR/checkpoints/
(orbax), DIR/config.json and DIR/log.txt (the console's log lines); rerunning
with the same workdir resumes. Ctrl-C stops after the running call with a
checkpoint (exit status 130); a second Ctrl-C stops at once.
"""

import logging as std_logging
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fedmchain_jax import data as fmc_data
from experiments import cli
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


def _log_to_file(workdir: str) -> None:
  """Copies the log lines into DIR/log.txt (appended across reruns; made
  at the first line, so a start that fails before one leaves no file)."""
  handler = std_logging.FileHandler(os.path.join(workdir, 'log.txt'),
                                    delay=True)
  handler.setFormatter(std_logging.Formatter(
      '%(asctime)s %(levelname)s %(message)s'))
  handler.addFilter(cli.not_library_chatter)
  std_logging.getLogger().addHandler(handler)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if logging.get_verbosity() < logging.INFO:
    logging.set_verbosity(logging.INFO)
  cli.quiet_platform_probe()
  logging.get_absl_handler().addFilter(cli.not_library_chatter)
  config, workdir = _CONFIG.value, _WORKDIR.value
  try:
    config_checks.validate(config)
  except config_checks.ConfigError as e:
    sys.exit(f'error: {e}')
  with cli.removed_if_left_empty(workdir):
    _check_workdir(workdir)
    _run(config, workdir)


def _run(config, workdir):
  _log_to_file(workdir)
  try:
    train.train_and_evaluate(config, workdir)
  except (config_checks.ConfigError,  # Checks that need the data.
          train.ResumeError, fmc_data.DataError) as e:
    sys.exit(f'error: {e}')
  except ModuleNotFoundError as e:
    fix = cli.missing_extra(e)
    if fix is None:
      raise
    sys.exit(f'error: config.data.name={config.data.name!r} needs '
             f'{e.name}, which is not installed: {fix}')
  except train.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(cli.INTERRUPTED)
  except KeyboardInterrupt:
    print('interrupted before a round of this run ended; rerun the same '
          'command to go on', file=sys.stderr)
    sys.exit(cli.INTERRUPTED)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser('config'))
