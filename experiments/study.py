r"""The comparison study: tuned on validation, reported on test.

  python -m experiments.study --study_dir=/tmp/study --out=docs/RESULTS.md \
      [--datasets=synthetic,av_digits] [--alphas=0.1,1.0] \
      [--missing=0.0,0.3,0.5] [--algorithms=...] [--budget=steps|examples]

Settings: Dirichlet alpha x missing-modality rate. Every run holds out
`VALIDATION_FRACTION` of each training client's examples
(`fmc.data.federated.hold_out`), so the training population is the same
whether a run evaluates on validation or test.

1. Tuning: for each dataset and alpha, each algorithm runs its own grid
   (`GRIDS`: stages of {field: values}, each stage one in-program sweep
   starting from the previous stage's choice) at missing rate
   `TUNE_MISSING` with `--tune_seeds`, evaluated on the validation split
   only (`eval.split = 'validation'`: the test split is not even read).
   The member with the best final validation fused accuracy is chosen; a
   rate chosen on its grid's edge is tried one step further (`EXTENDABLE`).
2. Final runs: the chosen values on every setting of that alpha, seeds
   `--seeds`, evaluated on the test split.

Budgets (`--budget`): 'steps' gives joint training `num_local_steps` steps
and the chain `steps_per_phase` per modality (equal steps: each encoder
sees half the examples under the chain); 'examples' gives each chain phase
`num_local_steps` steps, so each encoder sees as many examples a round as
under joint training. Joint training does the same work under either
budget, so its sweeps are the equal-steps ones (`budget_folder`). Every run reports uploaded and downloaded bytes
counted the same way for every method (`comm/*`, docs/algorithm.md).
Equal bytes (`--equal_bytes`): a method that uploads less than FedAvg in
the study's rounds goes on from its final runs' last checkpoint to up to
`MAX_ROUNDS_FACTOR` times the rounds (in DIR/.../equal_bytes) and is read
at the last evaluation within FedAvg's upload.

UCI-HAR and CREMA-D run when their raw files are in their configs'
`data.manual_dir` (or already built into the cache); otherwise the study
prints one line saying why and goes on without them.

Every finished sweep stays in --study_dir and is not rerun (an interrupted
study resumes where it stopped); the report is rewritten after each, so it
always holds what has finished. `--record=FILE` also keeps each finished
sweep's config, evaluation records and timing as one JSON line (`Record`):
a study given the same file on another machine reads those sweeps instead
of running them, so a study longer than one machine's stay goes on where
it stopped (docs/RESULTS.md is written with a record kept out of the
tree, docs/quickstart.md says where to fetch it; a FILE ending in .gz is
gzip; the report names the commits its sweeps ran at). Its header states
the study's wall time (the sum of the sweeps' compile and run times).
"""

import gzip
import importlib
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from benchmarks import bench
from experiments import diagnosis
from experiments import plot
from experiments import registry
from experiments import sweep
from experiments import train
from experiments.configs import av_digits_fedavg
from experiments.configs import crema_d_fedavg
from experiments.configs import uci_har_fedavg
from experiments.configs import default

ALGORITHMS = tuple(name for name, algorithm in registry.ALGORITHMS.items()
                   if algorithm.in_study)
ALPHAS = (0.1, 1.0)
MISSING = (0.0, 0.3, 0.5)
# Tuning runs at this missing rate; its choice serves every rate.
TUNE_MISSING = 0.3
VALIDATION_FRACTION = 0.15
# Dataset -> (config, fused-accuracy target for rounds/bytes-to-target,
# rounds).
DATASETS = {
    'synthetic': (default.get_config, 0.85, 100),
    'av_digits': (av_digits_fedavg.get_config, 0.95, 100),
    'uci_har': (uci_har_fedavg.get_config, 0.85, 200),
    'crema_d': (crema_d_fedavg.get_config, 0.5, 200),
}
# Label-skewed clients of the raw-file datasets (the study's alpha axis).
DIRICHLET_CLIENTS = {'av_digits': 30, 'uci_har': 105, 'crema_d': 73}

_LR = (0.05, 0.1, 0.2)
_RHO = (0.05, 0.1, 0.3)
# The sparse methods' aggregate is not the dense mean's size (agg/*/
# norm_ratio), so their server SGD rate is tuned too.
_SERVER_LR = (0.5, 1.0, 2.0)
_TAU = (-0.2, 0.0, 0.2)
# Algorithm -> tuning stages, each {field: values} swept as one program.
GRIDS = {
    'fedavg': ({'client.lr': _LR},),
    'fedprox': ({'client.lr': _LR, 'fedprox.mu': (0.001, 0.01, 0.1)},),
    'fedavg_ogm': ({'client.lr': _LR, 'ogm.alpha': (0.1, 0.5, 1.0)},),
    'fedopt_adam': ({'client.lr': _LR, 'server.lr': (0.003, 0.01, 0.03)},),
    'fedopt_yogi': ({'client.lr': _LR, 'server.lr': (0.003, 0.01, 0.03)},),
    'fedmchain': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                  {'server.lr': _SERVER_LR, 'fedmchain.tau': _TAU},
                  {'fedmchain.reg_lambda': (0.3, 1.0, 3.0)}),
    'fedmchain_adam': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                       {'server.lr': (0.001, 0.003, 0.01),
                        'fedmchain.tau': _TAU},
                       {'fedmchain.reg_lambda': (0.3, 1.0, 3.0)}),
    'fedmchain_noreg': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                        {'server.lr': _SERVER_LR, 'fedmchain.tau': _TAU}),
    'fedmchain_mean': ({'client.lr': _LR},),
    'fedmchain_ties': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                       {'server.lr': _SERVER_LR}),
    'joint_ssca': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                   {'server.lr': _SERVER_LR, 'fedmchain.tau': _TAU}),
    'joint_sparse_mean': ({'client.lr': _LR, 'fedmchain.rho': _RHO},
                          {'server.lr': _SERVER_LR}),
    'fedavg_median': ({'client.lr': _LR},),
    'fedavg_trimmed_mean': ({'client.lr': _LR},),
}
BUDGETS = ('steps', 'examples')
BUDGET_TEXT = {
    'steps': 'budget steps: a client takes the same steps a round under '
             'every method, so under the chain each encoder sees half the '
             'examples',
    'examples': 'budget examples: each encoder sees the same examples a '
                'round under every method, so a chained client takes joint '
                "training's steps once per modality; joint training's runs "
                'are the budget-steps ones',
}

_WORKDIR = flags.DEFINE_string('study_dir', '/tmp/fedmchain_study',
                               'Where every run writes.')
_OUT = flags.DEFINE_string('out', 'docs/RESULTS.md', 'The report.')
_DATASETS = flags.DEFINE_list('datasets', list(DATASETS), 'Datasets.')
_ALPHAS = flags.DEFINE_list('alphas', [str(a) for a in ALPHAS],
                            'Dirichlet alphas.')
_MISSING = flags.DEFINE_list('missing', [str(m) for m in MISSING],
                             'Missing-modality rates of the final runs.')
_ALGORITHMS = flags.DEFINE_list('algorithms', list(ALGORITHMS), 'Algorithms.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds of final runs.')
_TUNE_SEEDS = flags.DEFINE_list('tune_seeds', ['0'], 'Seeds of tuning runs.')
_TUNE = flags.DEFINE_bool('tune', True, 'Tune on validation; --notune runs '
                          "the config's values.")
_BUDGET = flags.DEFINE_enum('budget', 'steps', BUDGETS, 'Local work.')
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


def chained(algorithm) -> bool:
  """Whether `algorithm` trains modality by modality (the one kind of local
  training whose work the budget changes)."""
  return registry.ALGORITHMS[algorithm].local_training == 'chain'


def budget_folder(algorithm, budget) -> str:
  """The folder of `algorithm`'s sweeps under `budget`: 'steps' for joint
  training under 'examples' too, whose config is the same under both."""
  return budget if chained(algorithm) else 'steps'


def study_config(dataset, algorithm, alpha, missing, rounds, data_dir=None,
                 budget='steps', split='test'):
  """The config of one study run (before the tuned values)."""
  config = DATASETS[dataset][0]()
  config.algorithm = algorithm
  config.data.dirichlet_alpha = alpha
  config.data.missing_modality_rate = missing
  config.data.validation_fraction = VALIDATION_FRACTION
  config.eval.split = split
  config.eval.aggregation_metrics = True
  config.rounds.num_rounds = rounds
  config.rounds.eval_every = 10 if rounds % 10 == 0 else rounds
  if budget == 'examples' and chained(algorithm):
    config.client.steps_per_phase = config.client.num_local_steps
  if dataset in DIRICHLET_CLIENTS:
    config.data.partition = 'dirichlet'
    config.data.num_clients = DIRICHLET_CLIENTS[dataset]
    if data_dir:
      config.data.data_dir = data_dir
  return config


def missing_data(dataset, data_dir=None) -> str | None:
  """Why `dataset` cannot run here (its raw files absent and nothing
  cached), or None. Builds it into its cache when its files are there."""
  if dataset not in ('uci_har', 'crema_d'):
    return None  # Embedded, or AV-digits (whose absence the run reports).
  config = study_config(dataset, 'fedavg', 1.0, 0.0, 1, data_dir)
  module = importlib.import_module(f'fedmchain_jax.data.{dataset}')
  try:
    module.build(config.data.manual_dir, config.data.data_dir)
  except module.RawDataError as e:
    return str(e)
  return None


def _read_runs(workdir, count):
  runs = []
  for i in range(count):
    with open(os.path.join(workdir, f'member_{i}', 'metrics.jsonl')) as f:
      runs.append([json.loads(line) for line in f])
  return runs


# Config sections only some algorithms read: {section: reads(algorithm)}.
_SECTIONS = {
    'fedmchain': lambda name: registry.ALGORITHMS[name].fedmchain is not None,
    'fedprox': lambda name: name == 'fedprox',
    'ogm': lambda name: name == 'fedavg_ogm',
}


def _read_by(config: dict) -> dict:
  """The config without the sections its algorithm does not read and the
  fields that change no result (which metrics are kept), so that a new
  default there does not make a saved sweep stale."""
  name = config.get('algorithm')
  read = {k: v for k, v in config.items()
          if k not in _SECTIONS or (name in registry.ALGORITHMS
                                    and _SECTIONS[k](name))}
  read['eval'] = {k: v for k, v in read.get('eval', {}).items()
                  if k != 'aggregation_metrics'}
  # Fields added later, at the value a sweep saved before them ran with.
  read['model'] = {k: v for k, v in read.get('model', {}).items()
                   if train.SAVED_DEFAULTS.get(f'model.{k}', ()) != v}
  return read


def _compact(value):
  """`value` with its non-integral floats to 6 significant digits (the
  record's size; the report prints 3)."""
  if isinstance(value, dict):
    return {k: _compact(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_compact(v) for v in value]
  if isinstance(value, float) and not value.is_integer():
    return float(f'{value:.6g}')
  return value


# What the report reads of an evaluation record; the record keeps only these
# (the run's metrics.jsonl in --study_dir has every metric).
RECORDED = ('round', 'eval/accuracy', 'eval/examples', 'eval/f1',
            'comm/upload_bytes', 'comm/download_bytes',
            f'agg/{diagnosis.BLOCK}/')


def _recorded(runs):
  return [[{k: v for k, v in r.items() if k.startswith(RECORDED)}
           for r in run] for run in runs]


class Record:
  """The study's finished sweeps, one JSON line each in `path`: the sweep's
  folder under the study dir, its config, members' settings, evaluation
  records, timing and the commit it ran at. A study run with the same
  record on another machine (its study dir empty) reads a sweep from here
  instead of running it again; what it runs or reads from its study dir is
  appended. `path` None keeps nothing and only stamps `commit`."""

  def __init__(self, path, root, commit=''):
    self.path, self.root, self.commit = path, root, commit
    self.used = {}  # Commit -> sweeps read or run under it.
    self._sweeps = {}
    if path and os.path.exists(path):
      with self._open('rt') as f:
        for line in f:
          if line.strip():
            entry = json.loads(line)
            self._sweeps[entry['sweep']] = entry  # The last line wins.

  def _open(self, mode):
    # A path ending in .gz is gzip: appending adds a gzip member, and
    # reading takes the members in turn.
    return (gzip.open if self.path.endswith('.gz') else open)(self.path, mode)

  def _key(self, workdir):
    return os.path.relpath(workdir, self.root).replace(os.sep, '/')

  def find(self, workdir, wanted, grid):
    """(result, runs) of the recorded sweep of `workdir` if it ran `wanted`
    over `grid`, else None."""
    entry = self._sweeps.get(self._key(workdir))
    if entry is None or not _same_sweep(entry, wanted, grid):
      return None
    return entry, entry['runs']

  def add(self, workdir, result, runs):
    key = self._key(workdir)
    commit = result.get('commit') or ''
    self.used[commit] = self.used.get(commit, 0) + 1
    old = self._sweeps.get(key)
    if not self.path or old is not None and (
        _read_by(old['config']) == _read_by(result['config']) and
        [m['settings'] for m in old['members']] ==
        [m['settings'] for m in result['members']]):
      return  # Recorded already (a saved grid's keys are sorted: compare
      # the members, not the grid's expansion).
    entry = _compact({'sweep': key, 'commit': commit,
                      'config': result['config'], 'grid': result['grid'],
                      'members': [{'settings': m['settings']}
                                  for m in result['members']],
                      'timing': result['timing'],
                      'runs': _recorded(runs)})
    self._sweeps[key] = entry
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    with self._open('at') as f:
      f.write(json.dumps(entry, sort_keys=True, separators=(',', ':')) +
              '\n')


def _same_sweep(result, wanted, grid) -> bool:
  """Whether a saved sweep ran the config `wanted` over `grid` (in the
  fields its algorithm reads)."""
  return (_read_by(result.get('config') or {}) == _read_by(wanted) and
          [m['settings'] for m in result['members']] ==
          sweep.expand_settings(grid))


def _seed(workdir, start) -> float:
  """Copies the last checkpoint of the finished sweep in `start` into the
  empty `workdir`, where the same sweep of more rounds goes on from it;
  returns the seconds `start` spent on those rounds."""
  checkpoints = os.path.join(start, 'checkpoints')
  latest = max((n for n in os.listdir(checkpoints) if n.isdigit()), key=int)
  shutil.copytree(os.path.join(checkpoints, latest),
                  os.path.join(workdir, 'checkpoints', latest))
  shutil.copy(os.path.join(start, 'sweep_config.json'), workdir)
  with open(os.path.join(start, 'sweep.json')) as f:
    return json.load(f)['timing']['sweep_s']


def _run_sweep(config, grid, workdir, report_only=False, extends=None,
               record=None):
  """Runs (unless already there) and reads back one sweep:
  (members' settings, their records, the sweep's seconds). `extends`: the
  workdir of the same sweep of fewer rounds, finished, which this one goes
  on from (its seconds are not counted again). `record`: a `Record` read
  before running and added to after."""
  record = record or Record(None, os.path.dirname(workdir))
  done = os.path.join(workdir, 'sweep.json')
  grid = {k: list(v) for k, v in grid.items()}
  # What the saved sweep must have run to be reused: a sweep of another
  # config or grid (the study's grids or a tuned choice changed) runs again.
  wanted = json.loads(config.to_json())
  result = runs = None
  if os.path.exists(done):
    with open(done) as f:
      result = json.load(f)
    if not _same_sweep(result, wanted, grid):
      result = None
  if result is None:
    found = record.find(workdir, wanted, grid)
    if found is not None:
      result, runs = found
  if result is None:
    if report_only:
      return None
    seeded_s = 0.0
    if (extends and os.path.exists(os.path.join(extends, 'sweep.json')) and
        not os.path.isdir(os.path.join(workdir, 'checkpoints')) and
        sweep.continues(extends, config, grid)):
      seeded_s = _seed(workdir, extends)
    sweep.run_sweep(config, grid, workdir, sequential_baseline=False)
    with open(done) as f:
      result = json.load(f)
    result.update(config=wanted, grid=grid, commit=record.commit)
    result['timing']['extends_s'] = seeded_s
    with open(done, 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True)
  settings = [m['settings'] for m in result['members']]
  if runs is None:
    runs = _read_runs(workdir, len(settings))
  result.setdefault('grid', grid)
  record.add(workdir, result, runs)
  timing = result['timing']
  return (settings, runs,
          timing['compile_s'] + timing['sweep_s'] - timing.get('extends_s', 0))


# Fields whose grid grows past an edge when the best value lies on it (by
# the grid's own ratio, up to `MAX_EXTENSIONS` times a stage): rates and
# strengths with no natural bound.
EXTENDABLE = ('client.lr', 'server.lr', 'fedprox.mu')
MAX_EXTENSIONS = 2


def _edge_steps(grid, tried, best) -> dict:
  """{field: the next value past the edge} for the EXTENDABLE fields whose
  best value is the largest or smallest tried, by the grid's own ratio."""
  steps = {}
  for field, value in best.items():
    values = sorted(grid.get(field, ()))
    if field not in EXTENDABLE or len(values) < 2:
      continue
    if value == max(tried[field]):
      steps[field] = float(f'{value * values[-1] / values[-2]:.6g}')
    elif value == min(tried[field]):
      steps[field] = float(f'{value * values[0] / values[1]:.6g}')
  return steps


def tune(dataset, algorithm, alpha, seeds, rounds, root, data_dir=None,
         budget='steps', report_only=False, record=None):
  """Chooses the algorithm's values on validation (`GRIDS`).

  Each stage sweeps its grid from the earlier stages' choice; while the
  best value of an EXTENDABLE field is the largest or smallest tried, one
  more sweep tries the next value past it (all such fields at once, the
  others fixed), kept if better, up to MAX_EXTENSIONS times.

  Returns ({field: value} chosen, validation fused accuracy of the choice,
  seconds), or None when a sweep has not run (report_only).
  """
  chosen, accuracy, seconds = {}, None, 0.0
  base = os.path.join(root, dataset, budget_folder(algorithm, budget),
                      f'alpha{alpha}', 'tuning', algorithm)
  for stage, grid in enumerate(GRIDS[algorithm]):
    grid = {k: list(v) for k, v in grid.items()}
    tried = {k: set(v) for k, v in grid.items()}
    sweep_grid, best, best_accuracy = grid, None, -np.inf
    for extension in range(MAX_EXTENSIONS + 1):
      config = sweep.with_settings(
          study_config(dataset, algorithm, alpha, TUNE_MISSING, rounds,
                       data_dir, budget, split='validation'), chosen)
      suffix = f'_past_edge{extension}' if extension else ''
      result = _run_sweep(config, {**sweep_grid, 'seed': seeds},
                          os.path.join(base, f'stage{stage}{suffix}'),
                          report_only, record=record)
      if result is None:
        return None
      settings, runs, spent = result
      seconds += spent
      scores = {}
      for member, records in zip(settings, runs):
        key = tuple((k, member[k]) for k in grid)
        scores.setdefault(key, []).append(records[-1]['eval/accuracy'])
      top = max(scores, key=lambda k: np.mean(scores[k]))
      if np.mean(scores[top]) <= best_accuracy:
        break  # Past the edge is no better.
      best, best_accuracy = dict(top), float(np.mean(scores[top]))
      steps = _edge_steps(grid, tried, best)
      if not steps:
        break
      sweep_grid = {k: [steps.get(k, best[k])] for k in grid}
      for k, v in steps.items():
        tried[k].add(v)
    chosen.update(best)
    accuracy = best_accuracy
  return chosen, accuracy, seconds


def run_cell(dataset, algorithm, alpha, missing, seeds, rounds, root,
             data_dir=None, report_only=False, chosen=None, budget='steps',
             under='', record=None):
  """The final runs of one algorithm on one setting, evaluated on test:
  (workdir, records per seed, seconds), or None if not run (report_only).
  `under`: a folder of the setting's for runs of more rounds (equal
  bytes), which go on from the setting's own runs when those finished."""
  setting = os.path.join(root, dataset, budget_folder(algorithm, budget),
                         f'alpha{alpha}', f'missing{missing}')
  workdir = os.path.join(setting, under, algorithm)
  config = sweep.with_settings(
      study_config(dataset, algorithm, alpha, missing, rounds, data_dir,
                   budget), chosen or {})
  # Longer runs go on from the setting's own (the same rounds first).
  result = _run_sweep(config, {'seed': seeds}, workdir, report_only,
                      extends=os.path.join(setting, algorithm) if under
                      else None, record=record)
  if result is None:
    return None
  _, runs, seconds = result
  return workdir, runs, seconds


# A method uploading less than FedAvg gets this many times the rounds at
# most under the equal-bytes budget.
MAX_ROUNDS_FACTOR = 8


def equal_bytes_rounds(rounds: int, own_mib: float,
                       reference_mib: float) -> int | None:
  """Rounds for a method that uploads `own_mib` in `rounds` to upload
  about `reference_mib` (capped at MAX_ROUNDS_FACTOR times), or None when
  it uploads nearly as much already."""
  if own_mib >= 0.9 * reference_mib:
    return None
  return rounds * min(MAX_ROUNDS_FACTOR,
                      int(np.ceil(reference_mib / own_mib)))


def equal_bytes(by_algorithm, rounds, run) -> float:
  """Fills each cell's 'equal_bytes' (fused accuracy per seed at the last
  evaluation within FedAvg's upload, its largest over seeds) and
  'equal_bytes_rounds' (that evaluation's round, the mean over seeds):
  methods uploading less than FedAvg run `run(algorithm, rounds)` ->
  (records, seconds) or None. Returns the seconds spent."""
  if 'fedavg' not in by_algorithm:
    return 0.0
  reference = max(r[-1]['comm/upload_bytes']
                  for r in by_algorithm['fedavg'][0]['runs']) / 2**20
  seconds = 0.0
  for algorithm, (cell, _) in by_algorithm.items():
    runs, longer = cell['runs'], equal_bytes_rounds(
        rounds, cell['total_mib'], reference)
    if longer is not None:
      result = run(algorithm, longer)
      if result is None:
        continue
      runs, spent = result
      seconds += spent
    records = [last_within(r, reference * 2**20 * 1.0001) for r in runs]
    if None in records:
      continue
    cell['equal_bytes'] = [r['eval/accuracy'] for r in records]
    cell['equal_bytes_rounds'] = round(np.mean([r['round']
                                                for r in records]))
  return seconds


def diagnose(dataset, seeds, rounds, root, data_dir=None, budget='steps',
             report_only=False, rows_by_missing=None, done=lambda: None,
             record=None):
  """The diagnosis's variants (`diagnosis.VARIANTS`) on validation: fills
  and returns {missing: {variant: row}}, calling `done()` after each
  variant; also returns the seconds spent."""
  rows_by_missing = {} if rows_by_missing is None else rows_by_missing
  seconds = 0.0
  for missing in diagnosis.MISSING:
    rows = rows_by_missing.setdefault(missing, {})
    for name, algorithm, overrides in diagnosis.VARIANTS:
      config = sweep.with_settings(
          study_config(dataset, algorithm, diagnosis.ALPHA, missing, rounds,
                       data_dir, budget, split='validation'), overrides)
      workdir = os.path.join(root, dataset, budget, 'diagnosis',
                             f'missing{missing}',
                             diagnosis.variant_dir(name))
      result = _run_sweep(config, {'seed': seeds}, workdir, report_only,
                          record=record)
      if result is None:
        continue
      _, runs, spent = result
      seconds += spent
      rows[name] = diagnosis.summarize(runs)
      print(dataset, 'diagnosis', missing, name,
            fmt(rows[name]['fused']), flush=True)
      done()
  return rows_by_missing, seconds


def to_target(records, target):
  for record in records:
    if record['eval/accuracy'] >= target:
      return record['round'], record['comm/upload_bytes'] / 2**20
  return None, None


def last_within(records, budget_bytes):
  """The last evaluation's record within `budget_bytes` uploaded (None if
  the first evaluation already spent more)."""
  within = [r for r in records if r['comm/upload_bytes'] <= budget_bytes]
  return within[-1] if within else None


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


def fmt(values):
  return f'{np.mean(values):.3f} ± {np.std(values):.3f}'


def standard_error(accuracy, count):
  """The test split's binomial standard error at this accuracy."""
  return float(np.sqrt(accuracy * (1 - accuracy) / count))


# FedMChain as reconstructed, and with the server optimizer the diagnosis
# found (the summary's columns).
OURS = ('fedmchain', 'fedmchain_adam')
BASELINES = ('fedavg', 'fedprox', 'fedavg_ogm', 'fedopt_adam',
             'fedopt_yogi', 'joint_sparse_mean', 'fedavg_median',
             'fedavg_trimmed_mean')


def _complete(results, incomplete):
  """(dataset, alpha, missing, by_algorithm) of the settings whose final
  runs are all in (FedAvg's and FedMChain's at least)."""
  for dataset, cells in results.items():
    for (alpha, missing), by_algorithm in cells.items():
      if ('fedmchain' in by_algorithm and 'fedavg' in by_algorithm and not
          {(dataset, alpha, missing), (dataset, alpha, None)} & incomplete):
        yield dataset, alpha, missing, by_algorithm


def _best_baseline(by_algorithm):
  return max((a for a in by_algorithm if a in BASELINES),
             key=lambda a: np.mean(by_algorithm[a][0]['fused']))


def verdicts(results, incomplete=frozenset()) -> list[str]:
  """Plain sentences: per dataset and FedMChain variant (`OURS`), in how
  many settings it beats FedAvg and the best tuned baseline on final fused
  accuracy, and by how much (settings in `incomplete` left out)."""
  lines, by_dataset = [], {}
  for dataset, alpha, missing, by_algorithm in _complete(results,
                                                          incomplete):
    by_dataset.setdefault(dataset, []).append((alpha, missing, by_algorithm))
  for dataset, settings in by_dataset.items():
    for name in OURS:
      rows = [(a, m, b) for a, m, b in settings if name in b]
      if not rows:
        continue
      mean = lambda b, a: float(np.mean(b[a][0]['fused']))
      over_fedavg = sum(mean(b, name) > mean(b, 'fedavg') for _, _, b in rows)
      over_best = sum(mean(b, name) > mean(b, _best_baseline(b))
                      for _, _, b in rows)
      lines.append(f'- **{dataset}**, `{name}`: above FedAvg in '
                   f'{over_fedavg} of {len(rows)} settings, above the best '
                   f'tuned baseline in {over_best} of {len(rows)}: ' +
                   '; '.join(
                       f'alpha {a}, missing {m}: {mean(b, name):.3f} vs '
                       f'fedavg {mean(b, "fedavg"):.3f}, '
                       f'{_best_baseline(b)} {mean(b, _best_baseline(b)):.3f}'
                       for a, m, b in rows) + '.')
  return lines


def glance(results, test_sizes, incomplete=frozenset()) -> list[str]:
  """One table: per dataset and setting, FedAvg, the best tuned baseline
  and the `OURS` variants (final fused test accuracy, mean ± std over
  seeds), with the test split's standard error; settings in `incomplete`
  left out. README.md quotes its rows."""
  lines = ['| dataset | alpha | missing | fedavg | best baseline | ' +
           ' | '.join(OURS) + ' | test s.e. |',
           '| --- | --- | --- | --- | --- | ' + ' | '.join('---' for _ in OURS)
           + ' | --- |']
  for dataset, alpha, missing, by_algorithm in _complete(results,
                                                          incomplete):
    best = _best_baseline(by_algorithm)
    ours = [by_algorithm[a][0]['fused'] for a in OURS if a in by_algorithm]
    se = standard_error(max(float(np.mean(o)) for o in ours),
                        test_sizes.get(dataset, 0) or 1)
    lines.append(f'| {dataset} | {alpha} | {missing} | '
                 f'{fmt(by_algorithm["fedavg"][0]["fused"])} | '
                 f'{best} {fmt(by_algorithm[best][0]["fused"])} | ' +
                 ' | '.join(fmt(by_algorithm[a][0]['fused'])
                            if a in by_algorithm else '—' for a in OURS) +
                 f' | {se:.3f} |')
  return lines


def _choice_text(chosen) -> str:
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
           '| fused at FedAvg\'s bytes (rounds) | upload MiB | download MiB |',
           '| --- | --- | ' + ' | '.join('---' for _ in modalities) +
           ' | --- | --- | --- | --- | --- | --- |']
  best = max(np.mean(c['fused']) for c, _ in by_algorithm.values())
  # Equal bytes: each method's accuracy once it has uploaded as much as the
  # most frugal method uploads in all its rounds.
  budget_bytes = min(c['total_mib'] for c, _ in by_algorithm.values()) * 2**20
  for algorithm, (cell, _) in by_algorithm.items():
    fused = fmt(cell['fused'])
    if np.mean(cell['fused']) == best:
      fused = f'**{fused}**'
    reached = len(cell['rounds'])
    rounds_text = (f'{np.mean(cell["rounds"]):.0f} ({reached}/'
                   f'{len(seeds)})' if reached else '—')
    mib_text = f'{np.mean(cell["mib"]):.1f}' if reached else '—'
    at_budget = [last_within(r, budget_bytes * 1.0001) for r in cell['runs']]
    at_budget = [a['eval/accuracy'] for a in at_budget if a is not None]
    budget_text = fmt(at_budget) if len(at_budget) == len(seeds) else '—'
    fedavg_text = (f'{fmt(cell["equal_bytes"])} '
                   f'({cell["equal_bytes_rounds"]})'
                   if 'equal_bytes' in cell else '—')
    lines.append(f'| {algorithm} | {fused} | ' +
                 ' | '.join(fmt(cell[m]) for m in modalities) +
                 f' | {rounds_text} | {mib_text} | {budget_text} | '
                 f'{fedavg_text} | '
                 f'{cell["total_mib"]:.1f} | {cell["download_mib"]:.1f} |')
  se = standard_error(best, test_size) if test_size else None
  lines += ['', f'Test split: {test_size} examples; standard error of an '
            f'accuracy near {best:.2f}: {se:.3f}.' if se else '']
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
  commits = machine.get('sweep_commits') or {}
  ran_at = ('; its sweeps ran at ' + ', '.join(
      f'{c or "an unrecorded commit"} ({n} sweeps)'
      for c, n in sorted(commits.items(), key=lambda item: -item[1]))
            if commits else '')
  lines = ['# Results', '',
           f'Written by `{command}` at commit {machine.get("commit", "?")}'
           f'{ran_at} on '
           f'{machine.get("cpu_count", "?")} cores of '
           f'{machine.get("cpu_model", "?")} ({BUDGET_TEXT[budget]}; rounds: '
           f'{", ".join(f"{d} {r}" for d, r in rounds.items())}; '
           f'final seeds {", ".join(map(str, seeds))}, mean ± standard '
           'deviation over seeds; wall time of the sweeps: '
           f'{seconds / 60:.0f} min). Each algorithm runs the values it '
           f'chose on a validation split ({VALIDATION_FRACTION:.0%} of each '
           'training client\'s examples, never the test split) at missing '
           f'rate {TUNE_MISSING}, listed per dataset and alpha below. '
           '"to target": rounds and uploaded MiB until the fused accuracy '
           'first reaches the target, over the seeds that reach it '
           f'(n/{len(seeds)}); "fused at the least bytes": accuracy at the '
           'last evaluation within the upload the most frugal method of the '
           'setting spends in all its rounds; "fused at FedAvg\'s bytes": '
           'accuracy at the last evaluation within FedAvg\'s upload, a method '
           'that uploads less running more rounds (in brackets; at most '
           f'{MAX_ROUNDS_FACTOR}x); bytes count what a client '
           'sends (values plus positions or a bitmap) and downloads (the '
           'dense model). The best mean fused accuracy of each setting is '
           'in bold.', '', '## Summary', '']
  if missing_lines:
    lines[-2:-2] = ['## Not run yet', '',
                    'The summary leaves out the settings whose final runs '
                    'are not all in.', ''] + missing_lines + ['']
  table = glance(results, test_sizes, incomplete)
  lines += (verdicts(results, incomplete) + [''] + table + [''] if
            table[2:] else ['No setting has all its final runs yet.', ''])
  for dataset, cells in results.items():
    if not ran(dataset):
      continue  # Nothing run yet (said under 'Not run yet').
    target = DATASETS[dataset][1]
    lines += [f'## {dataset}', '', f'Target fused accuracy: {target}.', '']
    for alpha in sorted({a for a, _ in cells}):
      tuned = choices.get((dataset, alpha))
      if tuned:
        lines += [f'### Chosen on validation, Dirichlet alpha {alpha}', '',
                  '| algorithm | values |', '| --- | --- |']
        lines += [f'| {name} | {_choice_text(choice)} |'
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


def check_lists(datasets, algorithms, seeds, alphas=('1.0',),
                missing=('0.0',)) -> list[int]:
  """The seeds as integers; `app.UsageError` naming a bad list entry."""
  for flag, values, allowed in (('datasets', datasets, DATASETS),
                                ('algorithms', algorithms, GRIDS)):
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


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  seeds = check_lists(_DATASETS.value, _ALGORITHMS.value, _SEEDS.value,
                      _ALPHAS.value, _MISSING.value)
  tune_seeds = check_lists(_DATASETS.value, _ALGORITHMS.value,
                           _TUNE_SEEDS.value)
  alphas = [float(a) for a in _ALPHAS.value]
  missing_rates = [float(m) for m in _MISSING.value]
  root, budget, report_only = (_WORKDIR.value, _BUDGET.value,
                               _REPORT_ONLY.value)
  results, rounds, choices, test_sizes, diagnoses = {}, {}, {}, {}, {}
  pending = {}  # What has not run yet: see `not_run_yet`.

  def lacks(dataset, alpha, missing, part, name):
    pending.setdefault((dataset, alpha, missing, part), []).append(name)

  seconds, tic = 0.0, time.perf_counter()

  command = 'python -m experiments.study ' + ' '.join(sys.argv[1:])
  host = {'commit': bench.commit(), 'cpu_count': os.cpu_count(),
          'cpu_model': bench.cpu_model()}
  record = Record(_RECORD.value, root, host['commit'])
  host['sweep_commits'] = record.used

  def write_report():
    with open(_OUT.value, 'w') as f:
      f.write(report(results, seeds, rounds, choices, seconds, budget,
                     test_sizes, command, host, diagnoses, pending,
                     _figures(_OUT.value)) + '\n')

  for dataset in _DATASETS.value:
    absent = missing_data(dataset, _DATA_DIR.value)
    if absent is not None:
      print(f'{dataset}: skipped, {absent}', flush=True)
      lacks(dataset, None, None, 'data', absent)
      continue
    num_rounds = _ROUNDS.value or DATASETS[dataset][2]
    cells = results.setdefault(dataset, {})
    curves = []
    for alpha in alphas if _FINAL.value else ():
      tuned = choices.setdefault((dataset, alpha), {})
      for algorithm in _ALGORITHMS.value:
        chosen = None
        if _TUNE.value:
          chosen = tune(dataset, algorithm, alpha, tune_seeds, num_rounds,
                        root, _DATA_DIR.value, budget, report_only, record)
          if chosen is None:  # Not tuned yet: its final runs wait.
            lacks(dataset, alpha, None, 'tuning', algorithm)
            continue
          seconds += chosen[2]
          tuned[algorithm] = chosen[:2]
          print(dataset, alpha, algorithm, 'chose',
                _choice_text(tuned[algorithm]), flush=True)
        for missing in missing_rates:
          cell = run_cell(dataset, algorithm, alpha, missing, seeds,
                          num_rounds, root, _DATA_DIR.value, report_only,
                          chosen[0] if chosen else None, budget,
                          record=record)
          if cell is None:
            lacks(dataset, alpha, missing, 'final', algorithm)
            continue
          _, runs, spent = cell
          seconds += spent
          rounds[dataset] = runs[0][-1]['round']
          test_sizes[dataset] = int(runs[0][-1].get('eval/examples', 0))
          cells.setdefault((alpha, missing), {})[algorithm] = summarize_cell(
              runs, DATASETS[dataset][1])
          print(dataset, alpha, missing, algorithm,
                fmt(cells[(alpha, missing)][algorithm][0]['fused']),
                flush=True)
          if alpha == 1.0 and missing == 0.3:
            curves.append((algorithm, runs[0]))
          write_report()
      for missing in missing_rates if _EQUAL_BYTES.value else ():
        def run(algorithm, longer, missing=missing):
          cell = run_cell(dataset, algorithm, alpha, missing, seeds, longer,
                          root, _DATA_DIR.value, report_only,
                          tuned[algorithm][0] if algorithm in tuned else None,
                          budget, under='equal_bytes', record=record)
          if cell is None:
            lacks(dataset, alpha, missing, 'equal bytes', algorithm)
            return None
          return cell[1:]
        seconds += equal_bytes(cells.get((alpha, missing), {}), num_rounds,
                               run)
        write_report()
    _plot(curves, _OUT.value, dataset)
    if _DIAGNOSE.value:
      rows, spent = diagnose(dataset, seeds, num_rounds, root,
                             _DATA_DIR.value, budget, report_only,
                             diagnoses.setdefault(dataset, {}), write_report,
                             record)
      seconds += spent
      for missing in diagnosis.MISSING:
        for name, _, _ in diagnosis.VARIANTS:
          if name not in rows.get(missing, {}):
            lacks(dataset, None, missing, 'diagnosis', name)
      write_report()
  write_report()
  print(f'wrote {_OUT.value} ({(time.perf_counter() - tic) / 60:.1f} min)')


if __name__ == '__main__':
  app.run(main)
