r"""Robustness study: final accuracy under attackers, written as a markdown table.

  python -m experiments.robustness --config=experiments/configs/default.py \
      --out=docs/ROBUSTNESS.md [--seeds=0,1,2] [--fractions=0,0.1,0.2,0.3]

For each algorithm (--algorithms), attack kind and attacker fraction, runs
the config to the end for every seed (in-process, one temporary workdir each)
and reports the mean and standard deviation of the final fused accuracy.
"""

import os
import tempfile

from absl import app
from absl import flags
from absl import logging
import numpy as np
from ml_collections import config_flags

from experiments import cli
from experiments import registry
from experiments import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A config file.')
_OUT = flags.DEFINE_string('out', 'docs/ROBUSTNESS.md', 'Markdown output.')
_ALGORITHMS = flags.DEFINE_list(
    'algorithms', ['fedavg', 'fedmchain', 'fedavg_median',
                   'fedavg_trimmed_mean'], 'Algorithms to compare '
    '(experiments/registry.py).')
_ATTACKS = flags.DEFINE_list('attacks', ['sign_flip', 'scale', 'noise'],
                             'Attack kinds.')
_FRACTIONS = flags.DEFINE_list('fractions', ['0', '0.1', '0.2', '0.3'],
                               'Attacker fractions.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
flags.mark_flags_as_required(['config'])


def run(config, algorithm, attack, fraction, seed) -> dict:
  config = config.copy_and_resolve_references()
  config.algorithm = algorithm
  config.seed = seed
  config.faults.attack = attack if fraction > 0 else 'none'
  config.faults.attack_fraction = fraction
  config.rounds.eval_every = config.rounds.num_rounds
  with tempfile.TemporaryDirectory() as workdir:
    return train.train_and_evaluate(config, workdir)[-1]


def main(argv):
  del argv
  unknown = sorted(set(_ALGORITHMS.value) - set(registry.ALGORITHMS))
  if unknown:
    raise app.UsageError(f'--algorithms {",".join(unknown)} is unknown: '
                         f'allowed are {", ".join(registry.ALGORITHMS)}')
  logging.set_verbosity(logging.WARNING)
  fractions = [float(f) for f in _FRACTIONS.value]
  seeds = [int(s) for s in _SEEDS.value]
  rows = []
  for algorithm in _ALGORITHMS.value:
    baseline = [run(_CONFIG.value, algorithm, 'none', 0.0, s)['eval/accuracy']
                for s in seeds]
    for attack in _ATTACKS.value:
      cells = []
      for fraction in fractions:
        scores = baseline if fraction == 0 else [
            run(_CONFIG.value, algorithm, attack, fraction, s)[
                'eval/accuracy'] for s in seeds]
        cells.append(f'{np.mean(scores):.3f} ± {np.std(scores):.3f}')
        print(algorithm, attack, fraction, cells[-1], flush=True)
      rows.append(f'| {algorithm} | {attack} | ' + ' | '.join(cells) + ' |')
  header = ('| algorithm | attack | ' +
            ' | '.join(f'{f:.0%} attackers' for f in fractions) + ' |')
  rule = '| --- | --- | ' + ' | '.join('---' for _ in fractions) + ' |'
  table = '\n'.join([header, rule] + rows)
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  with open(_OUT.value, 'w') as f:
    f.write(
        '# Robustness to attackers\n\n'
        'Final fused test accuracy (mean ± standard deviation over seeds '
        f'{", ".join(map(str, seeds))}) on the embedded data with the '
        'default config (100 clients, cohort 10, 100 rounds), written by\n\n'
        '```sh\npython -m experiments.robustness '
        '--config=experiments/configs/default.py --out=docs/ROBUSTNESS.md\n'
        '```\n\n'
        'Attackers are a fixed set of clients (each client is one with '
        'probability equal to the fraction); `sign_flip` sends -delta, '
        '`scale` sends 10 x delta, `noise` sends Gaussian noise with the '
        'norm of delta (docs/reliability.md).\n\n' + table + '\n')
  print(table)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser('config'))
