r"""The comparison study: every algorithm on every setting, three seeds each.

  python -m experiments.study --study_dir=/tmp/study --out=docs/RESULTS.md \
      [--datasets=synthetic,av_digits] [--rounds=N]

Settings: Dirichlet alpha 0.1 and 1.0 x missing-modality rate 0, 0.3, 0.5;
algorithms fedavg, fedprox, fedavg_ogm, fedmchain and its ablations, at equal
local work (joint training 10 steps, the chain 2 phases x 5). Each setting's
seeds run as one in-program sweep (experiments/sweep.py). The report gives,
per dataset and setting, final fused and per-modality accuracy (mean ± std
over seeds), and the rounds and uploaded MiB until the fused accuracy first
reaches the dataset's target (mean over the seeds that reach it), then plots
of the curves.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments import plot
from experiments import registry
from experiments import sweep
from experiments.configs import av_digits_fedavg
from experiments.configs import default

ALGORITHMS = tuple(name for name, algorithm in registry.ALGORITHMS.items()
                   if algorithm.in_study)
ALPHAS = (0.1, 1.0)
MISSING = (0.0, 0.3, 0.5)
# Dataset -> (config, fused-accuracy target for rounds/bytes-to-target,
# rounds). AV-digits rounds cost ten times the embedded data's on a 2-core
# CPU, hence 30 rounds there (the whole study takes about 40 minutes).
DATASETS = {
    'synthetic': (default.get_config, 0.85, 100),
    'av_digits': (av_digits_fedavg.get_config, 0.95, 30),
}

_WORKDIR = flags.DEFINE_string('study_dir', '/tmp/fedmchain_study',
                               'Where every run writes.')
_OUT = flags.DEFINE_string('out', 'docs/RESULTS.md', 'The report.')
_DATASETS = flags.DEFINE_list('datasets', list(DATASETS), 'Datasets.')
_ALGORITHMS = flags.DEFINE_list('algorithms', list(ALGORITHMS), 'Algorithms.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
_ROUNDS = flags.DEFINE_integer('rounds', None,
                               'Rounds per run (default: per dataset).',
                               lower_bound=1)
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'AV-digits TFDS cache (default: config).')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Rewrite the report from the runs already in '
    '--study_dir (for each dataset that has them) without running anything.')


def study_config(dataset, algorithm, alpha, missing, rounds, data_dir=None):
  config = DATASETS[dataset][0]()
  config.algorithm = algorithm
  config.data.dirichlet_alpha = alpha
  config.data.missing_modality_rate = missing
  config.rounds.num_rounds = rounds
  config.rounds.eval_every = 10 if rounds % 10 == 0 else rounds
  if dataset == 'av_digits':
    config.data.partition = 'dirichlet'
    config.data.num_clients = 30
    if data_dir:
      config.data.data_dir = data_dir
  return config


def to_target(records, target):
  for record in records:
    if record['eval/accuracy'] >= target:
      return record['round'], record['comm/upload_bytes'] / 2**20
  return None, None


def run_cell(dataset, algorithm, alpha, missing, seeds, rounds, root,
             data_dir=None, report_only=False):
  workdir = os.path.join(root, dataset, f'alpha{alpha}_missing{missing}',
                         algorithm)
  if not report_only:
    config = study_config(dataset, algorithm, alpha, missing, rounds,
                          data_dir)
    sweep.run_sweep(config, {'seed': seeds}, workdir,
                    sequential_baseline=False)
  runs = []
  for i in range(len(seeds)):
    with open(os.path.join(workdir, f'member_{i}', 'metrics.jsonl')) as f:
      runs.append([json.loads(line) for line in f])
  return workdir, runs


def summarize_cell(runs, target):
  finals = [r[-1] for r in runs]
  modalities = sorted(k.rsplit('/', 1)[1] for k in finals[0]
                      if k.startswith('eval/accuracy/'))
  cell = {'fused': [f['eval/accuracy'] for f in finals]}
  for m in modalities:
    cell[m] = [f[f'eval/accuracy/{m}'] for f in finals]
  reached = [to_target(r, target) for r in runs]
  cell['rounds'] = [r for r, _ in reached if r is not None]
  cell['mib'] = [b for _, b in reached if b is not None]
  cell['total_mib'] = finals[0]['comm/upload_bytes'] / 2**20
  return cell, modalities


def fmt(values):
  return f'{np.mean(values):.3f} ± {np.std(values):.3f}'


def verdicts(results) -> list[str]:
  """Plain sentences: where FedMChain wins on fused accuracy, where not."""
  lines = []
  for dataset, cells in results.items():
    wins, losses = [], []
    for (alpha, missing), by_algorithm in cells.items():
      if 'fedmchain' not in by_algorithm or 'fedavg' not in by_algorithm:
        continue
      ours = np.mean(by_algorithm['fedmchain'][0]['fused'])
      theirs = np.mean(by_algorithm['fedavg'][0]['fused'])
      best_name = max(by_algorithm,
                      key=lambda a: np.mean(by_algorithm[a][0]['fused']))
      best = np.mean(by_algorithm[best_name][0]['fused'])
      text = (f'alpha {alpha}, missing {missing}: fedmchain {ours:.3f} vs '
              f'fedavg {theirs:.3f}')
      if best_name != 'fedmchain':
        text += f' (best: {best_name} {best:.3f})'
      (wins if ours > theirs else losses).append(text)
    lines.append(f'- **{dataset}**: FedMChain beats FedAvg on final fused '
                 f'accuracy in {len(wins)} of {len(wins) + len(losses)} '
                 'settings.')
    if losses:
      lines.append('  It does not win in: ' + '; '.join(losses) + '.')
    if wins:
      lines.append('  It wins in: ' + '; '.join(wins) + '.')
  return lines


def report(results, seeds, rounds) -> str:
  lines = ['# Results', '',
           'Written by `python -m experiments.study --out=docs/RESULTS.md` '
           f'(rounds: {", ".join(f"{d} {r}" for d, r in rounds.items())}; '
           f'seeds {", ".join(map(str, seeds))}, '
           'mean ± standard deviation over seeds). Equal local work: joint '
           'training takes 10 steps a round, the chain 2 phases x 5 steps. '
           '"to target": rounds and uploaded MiB until the fused accuracy '
           'first reaches the target, averaged over the seeds that reach it '
           f'(n/{len(seeds)}); "—" when none does. The best mean fused '
           'accuracy of each setting is in bold.', '', '## Summary', '']
  lines += verdicts(results) + ['']
  for dataset, cells in results.items():
    target = DATASETS[dataset][1]
    lines += [f'## {dataset}', '', f'Target fused accuracy: {target}.', '']
    for (alpha, missing), by_algorithm in cells.items():
      modalities = by_algorithm[next(iter(by_algorithm))][1]
      lines += [f'### Dirichlet alpha {alpha}, missing-modality rate '
                f'{missing}', '',
                '| algorithm | fused | ' +
                ' | '.join(f'{m} head' for m in modalities) +
                ' | rounds to target | MiB to target | MiB in all |',
                '| --- | --- | ' + ' | '.join('---' for _ in modalities) +
                ' | --- | --- | --- |']
      best = max(np.mean(c['fused']) for c, _ in by_algorithm.values())
      for algorithm, (cell, _) in by_algorithm.items():
        fused = fmt(cell['fused'])
        if np.mean(cell['fused']) == best:
          fused = f'**{fused}**'
        reached = len(cell['rounds'])
        rounds_text = (f'{np.mean(cell["rounds"]):.0f} ({reached}/'
                       f'{len(seeds)})' if reached else '—')
        mib_text = f'{np.mean(cell["mib"]):.1f}' if reached else '—'
        lines.append(f'| {algorithm} | {fused} | ' +
                     ' | '.join(fmt(cell[m]) for m in modalities) +
                     f' | {rounds_text} | {mib_text} | '
                     f'{cell["total_mib"]:.1f} |')
      lines.append('')
    figure = f'RESULTS_{dataset}.png'
    lines += [f'Curves (seed {seeds[0]}, alpha 1.0, missing rate 0.3):', '',
              f'![{dataset}]({figure})', '']
  return '\n'.join(lines)


def check_lists(datasets, algorithms, seeds) -> list[int]:
  """The seeds as integers; `app.UsageError` naming a bad list entry."""
  for flag, values, allowed in (('datasets', datasets, DATASETS),
                                ('algorithms', algorithms, ALGORITHMS)):
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
      raise app.UsageError(f'--{flag}={",".join(values)} is invalid: '
                           f'allowed are {", ".join(allowed)}')
  if not seeds or not all(s.isdigit() for s in seeds):
    raise app.UsageError(f'--seeds={",".join(seeds)} must be non-negative '
                         'integers, e.g. 0,1,2')
  return [int(s) for s in seeds]


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = check_lists(_DATASETS.value, _ALGORITHMS.value, _SEEDS.value)
  results = {}
  rounds = {}
  for dataset in _DATASETS.value:
    if _REPORT_ONLY.value and not os.path.isdir(
        os.path.join(_WORKDIR.value, dataset)):
      continue
    cells = {}
    curves = []
    for alpha in ALPHAS:
      for missing in MISSING:
        by_algorithm = {}
        for algorithm in _ALGORITHMS.value:
          if _REPORT_ONLY.value and not os.path.exists(os.path.join(
              _WORKDIR.value, dataset, f'alpha{alpha}_missing{missing}',
              algorithm, 'sweep.json')):
            continue  # Not run (yet): left out of the report.
          workdir, runs = run_cell(dataset, algorithm, alpha, missing, seeds,
                                   _ROUNDS.value or DATASETS[dataset][2],
                                   _WORKDIR.value,
                                   _DATA_DIR.value, _REPORT_ONLY.value)
          rounds[dataset] = runs[0][-1]['round']
          by_algorithm[algorithm] = summarize_cell(runs,
                                                   DATASETS[dataset][1])
          print(dataset, alpha, missing, algorithm,
                fmt(by_algorithm[algorithm][0]['fused']), flush=True)
          if alpha == 1.0 and missing == 0.3:
            curves.append(os.path.join(workdir, 'member_0'))
        if by_algorithm:
          cells[(alpha, missing)] = by_algorithm
    results[dataset] = cells
    if curves:
      out_dir = os.path.dirname(os.path.abspath(_OUT.value))
      runs = []
      for path in curves:
        _, records = plot.load_run(path)
        runs.append((path.split(os.sep)[-2], records))
      plot.plot(runs, os.path.join(out_dir, f'RESULTS_{dataset}.png'))
  with open(_OUT.value, 'w') as f:
    f.write(report(results, seeds, rounds) + '\n')
  print(f'wrote {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
