"""The study's report: per-setting tables, the summary and its sentences,
written as markdown from the runs' records (`experiments.study`)."""

import numpy as np

from experiments import diagnosis
from experiments import registry
from experiments import stats
from experiments import study_runs

# FedMChain as reconstructed (the summary's columns) and the baselines it is
# judged against (`Algorithm.role`).
OURS = registry.names('ours')
BASELINES = registry.names('baseline')
BUDGET_TEXT = {
    'steps': 'budget steps: a client takes the same steps a round under '
             'every method, so under the chain each encoder sees half the '
             'examples',
    'examples': 'budget examples: each encoder sees the same examples a '
                'round under every method, so a chained client takes joint '
                "training's steps once per modality; joint training's runs "
                'are the budget-steps ones',
}


def to_target(records, target):
  for record in records:
    if record['eval/accuracy'] >= target:
      return record['round'], record['comm/upload_bytes'] / 2**20
  return None, None


def summarize_cell(runs, target):
  finals = [r[-1] for r in runs]
  modalities = sorted(k.rsplit('/', 1)[1] for k in finals[0]
                      if k.startswith('eval/accuracy/'))
  cell = {'fused': [f['eval/accuracy'] for f in finals], 'runs': runs}
  for m in modalities:
    cell[m] = [f[f'eval/accuracy/{m}'] for f in finals]
  reached = [to_target(r, target) for r in runs]
  cell['rounds'] = [r for r, _ in reached if r is not None]
  cell['mib'] = [b for _, b in reached if b is not None]
  cell['total_mib'] = np.mean([f['comm/upload_bytes'] for f in finals]) / 2**20
  cell['download_mib'] = np.mean([f['comm/download_bytes']
                                  for f in finals]) / 2**20
  return cell, modalities


def _complete(results, incomplete):
  """(dataset, alpha, missing, by_algorithm) of the settings whose final
  runs are all in (FedAvg's and FedMChain's at least)."""
  for dataset, cells in results.items():
    for (alpha, missing), by_algorithm in cells.items():
      if ('fedmchain' in by_algorithm and 'fedavg' in by_algorithm and not
          {(dataset, alpha, missing), (dataset, alpha, None)} & incomplete):
        yield dataset, alpha, missing, by_algorithm


def _best_baseline(by_algorithm):
  """The baseline of the highest mean fused test accuracy (chosen on the
  same test runs it is compared on, which favours the baseline)."""
  return max((a for a in by_algorithm if a in BASELINES),
             key=lambda a: np.mean(by_algorithm[a][0]['fused']))


def _fused(by_algorithm, name):
  return by_algorithm[name][0]['fused']


def _against(by_algorithm, name, other) -> str:
  """`name`'s paired difference from `other` in fused accuracy."""
  return stats.fmt_paired(*stats.paired(_fused(by_algorithm, name),
                                        _fused(by_algorithm, other)))


def verdicts(results, incomplete=frozenset()) -> list[str]:
  """Plain sentences: per dataset and FedMChain variant (`OURS`), in how
  many settings it wins, is level with or loses to FedAvg and the best
  tuned baseline (paired over seeds, `paired`), settings in `incomplete`
  left out."""
  lines, by_dataset = [], {}
  for dataset, alpha, missing, by_algorithm in _complete(results,
                                                          incomplete):
    by_dataset.setdefault(dataset, []).append((alpha, missing, by_algorithm))
  for dataset, settings in by_dataset.items():
    for name in OURS:
      rows = [(a, m, b) for a, m, b in settings if name in b]
      if not rows:
        continue
      counts = []
      for other in ('fedavg', None):
        outcomes = [stats.verdict(*stats.paired(
            _fused(b, name), _fused(b, other or _best_baseline(b))))
                    for _, _, b in rows]
        counts.append(', '.join(f'{outcome} {outcomes.count(outcome)}'
                                for outcome in ('wins', 'level', 'loses')))
      against_best = [
          f'alpha {a}, missing {m}: '
          f'{_against(b, name, _best_baseline(b))} against '
          f'{_best_baseline(b)}' for a, m, b in rows]
      lines.append(
          f'- **{dataset}**, `{name}` in {len(rows)} settings: against '
          f'FedAvg {counts[0]}; against the best tuned baseline '
          f'{counts[1]}: ' + '; '.join(against_best) + '.')
  return lines


def glance(results, incomplete=frozenset()) -> list[str]:
  """One table: per dataset and setting, FedAvg, the best tuned baseline
  and the `OURS` variants (final fused test accuracy, `fmt`), with each
  variant's paired difference from the best baseline (`fmt_paired`);
  settings in `incomplete` left out. README.md quotes its rows."""
  columns = ' | '.join(f'{name} | {name} - best ({stats.CONFIDENCE:.0%} CI)'
                       for name in OURS)
  lines = [f'| dataset | alpha | missing | fedavg | best baseline | '
           f'{columns} |',
           '| --- | --- | --- | --- | --- | ' +
           ' | '.join('--- | ---' for _ in OURS) + ' |']
  for dataset, alpha, missing, by_algorithm in _complete(results,
                                                          incomplete):
    best = _best_baseline(by_algorithm)
    cells = []
    for name in OURS:
      if name not in by_algorithm:
        cells.append('— | —')
        continue
      cells.append(f'{stats.fmt(_fused(by_algorithm, name))} | '
                   f'{_against(by_algorithm, name, best)}')
    lines.append(f'| {dataset} | {alpha} | {missing} | '
                 f'{stats.fmt(_fused(by_algorithm, "fedavg"))} | '
                 f'{best} {stats.fmt(_fused(by_algorithm, best))} | ' +
                 ' | '.join(cells) + ' |')
  return lines


def choice_text(chosen) -> str:
  if chosen is None:
    return "the config's values"
  values, accuracy = chosen
  text = ', '.join(f'{k}={v:g}' for k, v in sorted(values.items()))
  return f'{text} (validation {accuracy:.3f})'


def _setting_table(by_algorithm, seeds, test_size) -> list[str]:
  modalities = by_algorithm[next(iter(by_algorithm))][1]
  lines = ['| algorithm | fused | ' +
           ' | '.join(f'{m} head' for m in modalities) +
           ' | rounds to target | MiB to target | fused at the least bytes '
           '| fused at FedAvg\'s upload (rounds) | fused at FedAvg\'s '
           'traffic (rounds) | upload MiB | download MiB |',
           '| --- | --- | ' + ' | '.join('---' for _ in modalities) +
           ' | --- | --- | --- | --- | --- | --- | --- |']
  best = max(np.mean(c['fused']) for c, _ in by_algorithm.values())
  # Equal bytes: each method's accuracy once it has uploaded as much as the
  # most frugal method uploads in all its rounds.
  budget_bytes = min(c['total_mib'] for c, _ in by_algorithm.values()) * 2**20
  for algorithm, (cell, _) in by_algorithm.items():
    fused = stats.fmt(cell['fused'])
    if np.mean(cell['fused']) == best:
      fused = f'**{fused}**'
    reached = len(cell['rounds'])
    rounds_text = (f'{np.mean(cell["rounds"]):.0f} ({reached}/'
                   f'{len(seeds)})' if reached else '—')
    mib_text = f'{np.mean(cell["mib"]):.1f}' if reached else '—'
    at_budget = [study_runs.last_within(r, budget_bytes * 1.0001)
                 for r in cell['runs']]
    at_budget = [a['eval/accuracy'] for a in at_budget if a is not None]
    budget_text = (stats.fmt(at_budget) if len(at_budget) == len(seeds)
                   else '—')
    at_fedavg = [(f'{stats.fmt(cell[key])} ({cell[key + "_rounds"]})'
                  if key in cell else '—')
                 for key in ('equal_bytes', 'equal_traffic')]
    lines.append(f'| {algorithm} | {fused} | ' +
                 ' | '.join(stats.fmt(cell[m]) for m in modalities) +
                 f' | {rounds_text} | {mib_text} | {budget_text} | ' +
                 ' | '.join(at_fedavg) + ' | '
                 f'{cell["total_mib"]:.1f} | {cell["download_mib"]:.1f} |')
  if test_size:
    lines += ['', f'Test split: {test_size} examples.']
  return lines


_PARTS = {'data': '{d}: skipped, {names}',
          'tuning': '{d}, alpha {a}: not tuned yet (nor run): {names}',
          'final': '{d}, alpha {a}, missing {m}: final runs of {names}',
          'equal bytes': '{d}, alpha {a}, missing {m}: equal-bytes runs of '
                         '{names}',
          'diagnosis': '{d} diagnosis, missing {m}: {names}'}


def not_run_yet(pending, empty=()) -> tuple[list[str], set]:
  """Lines naming what the report lacks, and the settings whose final runs
  are not all in: (dataset, alpha, missing), or (dataset, alpha, None) for
  every missing rate of an alpha. `pending`: {(dataset, alpha, missing,
  part): [names]}, part one of `_PARTS` (alpha, missing None where they do
  not apply); `empty`: datasets with nothing run yet, one line each."""
  lines, incomplete, said = [], set(), set()
  for (d, a, m, part), names in pending.items():
    if part in ('tuning', 'final'):
      incomplete.add((d, a, m))
    if d in empty and part != 'data':
      if d not in said:
        lines.append(f'- {d}: nothing has run yet.')
        said.add(d)
      continue
    lines.append('- ' + _PARTS[part].format(d=d, a=a, m=m,
                                            names=', '.join(names)) + '.')
  return lines, incomplete


def _header(command, machine, budget, rounds, seeds, seconds) -> list[str]:
  """The report's first lines: how it was written, from which sweeps, and
  how to read its figures."""
  commits = machine.get('sweep_commits') or {}
  ran_at = ('; its sweeps ran at ' + ', '.join(
      f'{c or "an unrecorded commit"} ({n} sweeps)'
      for c, n in sorted(commits.items(), key=lambda item: -item[1]))
            if commits else '')
  return ['# Results', '',
           f'Written by `{command}` at commit {machine.get("commit", "?")}'
           f'{ran_at} on '
           f'{machine.get("cpu_count", "?")} cores of '
           f'{machine.get("cpu_model", "?")} ({BUDGET_TEXT[budget]}; rounds: '
           f'{", ".join(f"{d} {r}" for d, r in rounds.items())}; '
           f'final seeds {", ".join(map(str, seeds))}; wall time of the '
           'sweeps: '
           f'{seconds / 60:.0f} min). Each algorithm runs the values it '
           'chose on a validation split '
           f'({study_runs.VALIDATION_FRACTION:.0%} of each training '
           'client\'s examples, never the test split) at missing rate '
           f'{study_runs.TUNE_MISSING}, listed per dataset and alpha below. '
           '"to target": rounds and uploaded MiB until the fused accuracy '
           'first reaches the target, over the seeds that reach it '
           f'(n/{len(seeds)}); "fused at the least bytes": accuracy at the '
           'last evaluation within the upload the most frugal method of the '
           'setting spends in all its rounds; "fused at FedAvg\'s bytes": '
           'accuracy at the last evaluation within FedAvg\'s upload, a method '
           'that uploads less running more rounds (in brackets; at most '
           f'{study_runs.MAX_ROUNDS_FACTOR}x): upload is held equal, while '
           'its rounds, downloads and client compute grow; "fused at '
           'FedAvg\'s traffic": the same within FedAvg\'s upload plus '
           'download, so the rounds grow less; bytes count what a client '
           'sends (values plus positions or a bitmap) and downloads (the '
           'dense model). The best mean fused accuracy of each setting is '
           'in bold. Uncertainty comes from the seeds alone, one convention '
           'throughout: a cell is the mean ± the standard deviation over '
           'seeds (n - 1); a comparison is the mean of the per-seed '
           'differences (the same seeds, splits and test examples) with its '
           f'{stats.CONFIDENCE:.0%} t interval over seeds, and a method '
           '"wins" or "loses" only where that interval excludes 0, else it is "level". '
           'The best baseline of a setting is the one of highest mean test '
           'accuracy there, which favours it.']


def report(results, seeds, rounds, choices=None, seconds=0.0,
           budget='steps', test_sizes=None,
           command='python -m experiments.study', machine=None,
           diagnoses=None, pending=None, figures='RESULTS') -> str:
  """The study as markdown. `choices`: {(dataset, alpha): {algorithm:
  (values, validation accuracy)}}; `machine`: commit, cpu_count,
  cpu_model; `diagnoses`: {dataset: `diagnose(...)`'s rows}; `pending`:
  what has not run yet (`not_run_yet`); `figures`: the curves' file names
  before `_{dataset}.png` (`_plot`)."""
  diagnoses = diagnoses or {}
  ran = lambda d: results.get(d) or any(diagnoses.get(d, {}).values())
  missing_lines, incomplete = not_run_yet(
      pending or {}, [d for d in results if not ran(d)])
  machine = machine or {}
  choices = choices or {}
  test_sizes = test_sizes or {}
  lines = _header(command, machine, budget, rounds, seeds, seconds) + [
      '', '## Summary', '']
  if missing_lines:
    lines[-2:-2] = ['## Not run yet', '',
                    'The summary leaves out the settings whose final runs '
                    'are not all in.', ''] + missing_lines + ['']
  table = glance(results, incomplete)
  lines += (verdicts(results, incomplete) + [''] + table + [''] if
            table[2:] else ['No setting has all its final runs yet.', ''])
  for dataset, cells in results.items():
    if not ran(dataset):
      continue  # Nothing run yet (said under 'Not run yet').
    target = registry.DATASETS[dataset].target
    lines += [f'## {dataset}', '', f'Target fused accuracy: {target}.', '']
    for alpha in sorted({a for a, _ in cells}):
      tuned = choices.get((dataset, alpha))
      if tuned:
        lines += [f'### Chosen on validation, Dirichlet alpha {alpha}', '',
                  '| algorithm | values |', '| --- | --- |']
        lines += [f'| {name} | {choice_text(choice)} |'
                  for name, choice in tuned.items()]
        lines.append('')
      for (cell_alpha, missing), by_algorithm in cells.items():
        if cell_alpha != alpha:
          continue
        lines += [f'### Dirichlet alpha {alpha}, missing-modality rate '
                  f'{missing}', '']
        lines += _setting_table(by_algorithm, seeds,
                                test_sizes.get(dataset)) + ['']
    if (1.0, 0.3) in cells:  # The figure main() draws.
      lines += [f'Curves (seed {seeds[0]}, alpha 1.0, missing rate 0.3):',
                '', f'![{dataset}]({figures}_{dataset}.png)', '']
    if any(diagnoses.get(dataset, {}).values()):
      lines += diagnosis.section(diagnoses[dataset], seeds, dataset)
  return '\n'.join(lines)

