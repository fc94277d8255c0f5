r"""The comparison study: tuned on validation, reported on test.

  python -m experiments.study --study_dir=/tmp/study --out=docs/RESULTS.md \
      [--datasets=synthetic,av_digits] [--alphas=0.1,1.0] \
      [--missing=0.0,0.3,0.5] [--algorithms=...] [--budget=steps|examples]

Settings: Dirichlet alpha x missing-modality rate. Every run holds out
`study_runs.VALIDATION_FRACTION` of each training client's examples
(`fmc.data.federated.hold_out`), so the training population is the same
whether a run evaluates on validation or test.

1. Tuning: for each dataset and alpha, each algorithm runs its own grid
   (`registry.ALGORITHMS[name].grid`: stages of {field: values}, each one
   in-program sweep starting from the previous stage's choice) at missing
   rate `study_runs.TUNE_MISSING` with `--tune_seeds`, evaluated on the
   validation split only (`eval.split = 'validation'`: the test split is
   not even read). The member with the best final validation fused
   accuracy is chosen; a rate chosen on its grid's edge is tried one step
   further (`study_runs.EXTENDABLE`).
2. Final runs: the chosen values on every setting of that alpha, seeds
   `--seeds`, evaluated on the test split.

Budgets (`--budget`): 'steps' gives joint training `num_local_steps` steps
and the chain `steps_per_phase` per modality (equal steps: each encoder
sees half the examples under the chain); 'examples' gives each chain phase
`num_local_steps` steps, so each encoder sees as many examples a round as
under joint training. Joint training does the same work under either
budget, so its sweeps are the equal-steps ones (`study_runs.budget_folder`).
Every run reports uploaded and downloaded bytes counted the same way for
every method (`comm/*`, docs/algorithm.md).
Equal bytes (`--equal_bytes`): a method that uploads less than FedAvg in
the study's rounds goes on from its final runs' last checkpoint to up to
`study_runs.MAX_ROUNDS_FACTOR` times the rounds (in DIR/.../equal_bytes)
and is read at the last evaluation within FedAvg's upload, and within
FedAvg's upload plus download (equal total traffic).

UCI-HAR and CREMA-D run when their raw files are in their configs'
`data.manual_dir` (or already built into the cache); otherwise the study
prints one line saying why and goes on without them.

Every finished sweep stays in --study_dir and is not rerun (an interrupted
study resumes where it stopped); the report is rewritten after each, so it
always holds what has finished. `--record=FILE` also keeps each finished
sweep's config, evaluation records and timing as one JSON line
(`study_record.Record`):
a study given the same file on another machine reads those sweeps instead
of running them, so a study longer than one machine's stay goes on where
it stopped (docs/RESULTS.md is written with a record kept out of the
tree, docs/quickstart.md says where to fetch it; a FILE ending in .gz is
gzip; the report names the commits its sweeps ran at). Its header states
the study's wall time (the sum of the sweeps' compile and run times).
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from experiments import diagnosis
from experiments import host
from experiments import plot
from experiments import registry
from experiments import stats
from experiments import study_record
from experiments import study_report
from experiments import study_runs

ALGORITHMS = tuple(name for name, algorithm in registry.ALGORITHMS.items()
                   if algorithm.in_study)

_WORKDIR = flags.DEFINE_string('study_dir', '/tmp/fedmchain_study',
                               'Where every run writes.')
_OUT = flags.DEFINE_string('out', 'docs/RESULTS.md', 'The report.')
_DATASETS = flags.DEFINE_list('datasets', list(registry.DATASETS), 'Datasets.')
_ALPHAS = flags.DEFINE_list('alphas', [str(a) for a in study_runs.ALPHAS],
                            'Dirichlet alphas.')
_MISSING = flags.DEFINE_list('missing', [str(m) for m in study_runs.MISSING],
                             'Missing-modality rates of the final runs.')
_ALGORITHMS = flags.DEFINE_list('algorithms', list(ALGORITHMS), 'Algorithms.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of final runs.')
_TUNE_SEEDS = flags.DEFINE_list('tune_seeds', ['0'], 'Seeds of tuning runs.')
_TUNE = flags.DEFINE_bool('tune', True, 'Tune on validation; --notune runs '
                          "the config's values.")
_BUDGET = flags.DEFINE_enum('budget', 'steps', study_runs.BUDGETS,
                            'Local work.')
_ROUNDS = flags.DEFINE_integer('rounds', None,
                               'Rounds per run (default: per dataset).',
                               lower_bound=1)
_DATA_DIR = flags.DEFINE_string('data_dir', None,
                                'AV-digits TFDS cache (default: config).')
_EQUAL_BYTES = flags.DEFINE_bool(
    'equal_bytes', True, 'Also run each method that uploads less than '
    'FedAvg for more rounds, and report it at FedAvg\'s upload.')
_DIAGNOSE = flags.DEFINE_bool(
    'diagnose', True, "Run FedMChain's parts one at a time under skew on "
    'validation (experiments/diagnosis.py), after the final runs.')
_FINAL = flags.DEFINE_bool(
    'final', True, 'Tune and run the final runs; --nofinal --diagnose runs '
    'the diagnosis alone.')
_REPORT_ONLY = flags.DEFINE_bool(
    'report_only', False, 'Rewrite the report from the runs already in '
    '--study_dir and --record without running anything.')
_RECORD = flags.DEFINE_string(
    'record', None, 'A JSON-lines file of finished sweeps (`Record`; gzip '
    'when it ends in .gz): a '
    'sweep found there is not run again, and every sweep the study runs or '
    'reads from --study_dir is added, so a study goes on where another '
    'machine left it. Omit it to run everything in --study_dir.')


def check_lists(datasets, algorithms, seeds, alphas=('1.0',),
                missing=('0.0',)) -> list[int]:
  """The seeds as integers; `app.UsageError` naming a bad list entry."""
  for flag, values, allowed in (
      ('datasets', datasets, registry.DATASETS),
      ('algorithms', algorithms, registry.ALGORITHMS)):
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
      raise app.UsageError(f'--{flag}={",".join(values)} is invalid: '
                           f'allowed are {", ".join(allowed)}')
  for flag, values, valid, allowed in (
      ('alphas', alphas, lambda x: x > 0, '(0, inf)'),
      ('missing', missing, lambda x: 0 <= x < 1, '[0, 1)')):
    try:
      numbers = [float(v) for v in values]
    except ValueError:
      numbers = []
    if not numbers or not all(map(valid, numbers)):
      raise app.UsageError(f'--{flag}={",".join(values)} is invalid: '
                           f'numbers in {allowed}, comma-separated')
  if not seeds or not all(s.isdigit() for s in seeds):
    raise app.UsageError(f'--seeds={",".join(seeds)} must be non-negative '
                         'integers, e.g. 0,1,2')
  return [int(s) for s in seeds]


def _figures(out) -> str:
  """The curves' file names beside report `out`, before `_{dataset}.png`:
  its name without the extension, so two reports keep their own figures."""
  return os.path.splitext(os.path.basename(out))[0]


def _plot(curves, out, dataset):
  """`curves`: [(algorithm, records)]."""
  if not curves:
    return
  plot.plot(curves, os.path.join(os.path.dirname(os.path.abspath(out)),
                                 f'{_figures(out)}_{dataset}.png'))


class _Study:
  """What the study has so far (results, choices, what is pending) and the
  report written from it after every finished sweep."""

  def __init__(self, seeds, budget, out, record, machine, command):
    self.seeds, self.budget, self.out = seeds, budget, out
    self.record, self.machine, self.command = record, machine, command
    self.results, self.rounds, self.choices = {}, {}, {}
    self.test_sizes, self.diagnoses = {}, {}
    self.pending = {}  # What has not run yet: see `not_run_yet`.
    self.seconds = 0.0

  def lacks(self, dataset, alpha, missing, part, name):
    self.pending.setdefault((dataset, alpha, missing, part), []).append(name)

  def write_report(self):
    with open(self.out, 'w') as f:
      f.write(study_report.report(
          self.results, self.seeds, self.rounds, self.choices, self.seconds,
          self.budget, self.test_sizes, self.command, self.machine,
          self.diagnoses, self.pending, _figures(self.out)) + '\n')


def _final_runs(study, dataset, alpha, algorithm, chosen, num_rounds,
                missing_rates, curves):
  """One algorithm's final runs on every missing rate of one alpha."""
  cells = study.results[dataset]
  for missing in missing_rates:
    cell = study_runs.run_cell(
        dataset, algorithm, alpha, missing, study.seeds, num_rounds,
        _WORKDIR.value, _DATA_DIR.value, _REPORT_ONLY.value,
        chosen[0] if chosen else None, study.budget, record=study.record)
    if cell is None:
      study.lacks(dataset, alpha, missing, 'final', algorithm)
      continue
    _, runs, spent = cell
    study.seconds += spent
    study.rounds[dataset] = runs[0][-1]['round']
    study.test_sizes[dataset] = int(runs[0][-1].get('eval/examples', 0))
    cells.setdefault((alpha, missing), {})[algorithm] = (
        study_report.summarize_cell(runs, registry.DATASETS[dataset].target))
    print(dataset, alpha, missing, algorithm,
          stats.fmt(cells[(alpha, missing)][algorithm][0]["fused"]),
          flush=True)
    if alpha == 1.0 and missing == 0.3:
      curves.append((algorithm, runs[0]))
    study.write_report()


def _equal_bytes_runs(study, dataset, alpha, num_rounds, missing_rates):
  tuned = study.choices[(dataset, alpha)]
  for missing in missing_rates:
    def run(algorithm, longer, missing=missing):
      cell = study_runs.run_cell(
          dataset, algorithm, alpha, missing, study.seeds, longer,
          _WORKDIR.value, _DATA_DIR.value, _REPORT_ONLY.value,
          tuned[algorithm][0] if algorithm in tuned else None, study.budget,
          under='equal_bytes', record=study.record)
      if cell is None:
        study.lacks(dataset, alpha, missing, 'equal bytes', algorithm)
        return None
      return cell[1:]
    study.seconds += study_runs.equal_bytes(
        study.results[dataset].get((alpha, missing), {}), num_rounds, run)
    study.write_report()


def _alpha(study, dataset, alpha, tune_seeds, num_rounds, missing_rates,
           curves):
  """Tuning, final runs and equal-bytes runs of one dataset and alpha."""
  tuned = study.choices.setdefault((dataset, alpha), {})
  for algorithm in _ALGORITHMS.value:
    chosen = None
    if _TUNE.value:
      chosen = study_runs.tune(
          dataset, algorithm, alpha, tune_seeds, num_rounds, _WORKDIR.value,
          _DATA_DIR.value, study.budget, _REPORT_ONLY.value, study.record)
      if chosen is None:  # Not tuned yet: its final runs wait.
        study.lacks(dataset, alpha, None, 'tuning', algorithm)
        continue
      study.seconds += chosen[2]
      tuned[algorithm] = chosen[:2]
      print(dataset, alpha, algorithm, 'chose',
            study_report.choice_text(tuned[algorithm]), flush=True)
    _final_runs(study, dataset, alpha, algorithm, chosen, num_rounds,
                missing_rates, curves)
  if _EQUAL_BYTES.value:
    _equal_bytes_runs(study, dataset, alpha, num_rounds, missing_rates)


def _diagnosis(study, dataset, num_rounds):
  rows, spent = study_runs.diagnose(
      dataset, study.seeds, num_rounds, _WORKDIR.value, _DATA_DIR.value,
      study.budget, _REPORT_ONLY.value,
      study.diagnoses.setdefault(dataset, {}), study.write_report,
      study.record)
  study.seconds += spent
  for missing in diagnosis.MISSING:
    for name, _, _ in diagnosis.VARIANTS:
      if name not in rows.get(missing, {}):
        study.lacks(dataset, None, missing, 'diagnosis', name)
  study.write_report()


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = check_lists(_DATASETS.value, _ALGORITHMS.value, _SEEDS.value,
                      _ALPHAS.value, _MISSING.value)
  tune_seeds = check_lists(_DATASETS.value, _ALGORITHMS.value,
                           _TUNE_SEEDS.value)
  alphas = [float(a) for a in _ALPHAS.value]
  missing_rates = [float(m) for m in _MISSING.value]
  tic = time.perf_counter()
  machine = {'commit': host.commit(), 'cpu_count': os.cpu_count(),
             'cpu_model': host.cpu_model()}
  record = study_record.Record(_RECORD.value, _WORKDIR.value,
                               machine['commit'])
  machine['sweep_commits'] = record.used
  study = _Study(seeds, _BUDGET.value, _OUT.value, record, machine,
                 'python -m experiments.study ' + ' '.join(sys.argv[1:]))
  for dataset in _DATASETS.value:
    absent = study_runs.missing_data(dataset, _DATA_DIR.value)
    if absent is not None:
      print(f'{dataset}: skipped, {absent}', flush=True)
      study.lacks(dataset, None, None, 'data', absent)
      continue
    num_rounds = _ROUNDS.value or registry.DATASETS[dataset].rounds
    study.results.setdefault(dataset, {})
    curves = []
    for alpha in alphas if _FINAL.value else ():
      _alpha(study, dataset, alpha, tune_seeds, num_rounds, missing_rates,
             curves)
    _plot(curves, _OUT.value, dataset)
    if _DIAGNOSE.value:
      _diagnosis(study, dataset, num_rounds)
  study.write_report()
  print(f'wrote {_OUT.value} ({(time.perf_counter() - tic) / 60:.1f} min)')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser())
