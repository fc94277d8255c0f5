"""The study's runs: each setting's config, tuning on validation, the final
runs on test, the equal-bytes runs and the diagnosis (`experiments.study`).

Every run is an in-program sweep (`experiments.sweep`) in its own folder of
the study dir, not rerun once finished and read from the record
(`study_record.Record`) when another machine ran it.
"""

import importlib
import json
import os
import shutil

import numpy as np

from experiments import diagnosis
from experiments import registry
from experiments import study_record
from experiments import sweep

ALPHAS = (0.1, 1.0)


MISSING = (0.0, 0.3, 0.5)


# Tuning runs at this missing rate; its choice serves every rate.
TUNE_MISSING = 0.3


VALIDATION_FRACTION = 0.15


BUDGETS = ('steps', 'examples')


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
  entry = registry.DATASETS[dataset]
  config = entry.config()
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
  if entry.dirichlet_clients:
    config.data.partition = 'dirichlet'
    config.data.num_clients = entry.dirichlet_clients
    if data_dir:
      config.data.data_dir = data_dir
  return config


def missing_data(dataset, data_dir=None) -> str | None:
  """Why `dataset` cannot run here (its raw files absent and nothing
  cached), or None. Builds it into its cache when its files are there."""
  entry = registry.DATASETS[dataset]
  if not entry.skipped_when_absent:
    return None  # Embedded, or one whose absence the run reports.
  config = study_config(dataset, 'fedavg', 1.0, 0.0, 1, data_dir)
  module = importlib.import_module(
      f'fedmchain_jax.data.{entry.raw_module}')
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


def run_sweep(config, grid, workdir, report_only=False, extends=None,
               record=None):
  """Runs (unless already there) and reads back one sweep:
  (members' settings, their records, the sweep's seconds). `extends`: the
  workdir of the same sweep of fewer rounds, finished, which this one goes
  on from (its seconds are not counted again). `record`: a `Record` read
  before running and added to after."""
  record = record or study_record.Record(None, os.path.dirname(workdir))
  done = os.path.join(workdir, 'sweep.json')
  grid = {k: list(v) for k, v in grid.items()}
  # What the saved sweep must have run to be reused: a sweep of another
  # config or grid (the study's grids or a tuned choice changed) runs again.
  wanted = json.loads(config.to_json())
  result = runs = None
  if os.path.exists(done):
    with open(done) as f:
      result = json.load(f)
    if not study_record.same_sweep(result, wanted, grid):
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
  """Chooses the algorithm's values on validation (`Algorithm.grid`).

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
  for stage, grid in enumerate(registry.ALGORITHMS[algorithm].grid):
    grid = {k: list(v) for k, v in grid.items()}
    tried = {k: set(v) for k, v in grid.items()}
    sweep_grid, best, best_accuracy = grid, None, -np.inf
    for extension in range(MAX_EXTENSIONS + 1):
      config = sweep.with_settings(
          study_config(dataset, algorithm, alpha, TUNE_MISSING, rounds,
                       data_dir, budget, split='validation'), chosen)
      suffix = f'_past_edge{extension}' if extension else ''
      result = run_sweep(config, {**sweep_grid, 'seed': seeds},
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
  result = run_sweep(config, {'seed': seeds}, workdir, report_only,
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
  'equal_bytes_rounds' (that evaluation's round, the mean over seeds), and
  the same within FedAvg's upload plus download ('equal_traffic',
  'equal_traffic_rounds'): methods uploading less than FedAvg run
  `run(algorithm, rounds)` -> (records, seconds) or None. Returns the
  seconds spent."""
  if 'fedavg' not in by_algorithm:
    return 0.0
  reference = max(r[-1]['comm/upload_bytes']
                  for r in by_algorithm['fedavg'][0]['runs']) / 2**20
  traffic = max(_traffic(r[-1])
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
    for key, budget, spent_of in (
        ('equal_bytes', reference, _upload),
        ('equal_traffic', traffic, _traffic)):
      records = [last_within(r, budget * 2**20 * 1.0001, spent_of)
                 for r in runs]
      if None in records:
        continue
      cell[key] = [r['eval/accuracy'] for r in records]
      cell[key + '_rounds'] = round(np.mean([r['round'] for r in records]))
  return seconds


def _upload(record) -> float:
  return record['comm/upload_bytes']


def _traffic(record) -> float:
  return record['comm/upload_bytes'] + record['comm/download_bytes']


def last_within(records, budget_bytes, spent=_upload):
  """The last evaluation's record within `budget_bytes` (of upload, or
  what `spent(record)` counts), None if the first already spent more."""
  within = [r for r in records if spent(r) <= budget_bytes]
  return within[-1] if within else None


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
      result = run_sweep(config, {'seed': seeds}, workdir, report_only,
                          record=record)
      if result is None:
        continue
      _, runs, spent = result
      seconds += spent
      rows[name] = diagnosis.summarize(runs)
      print(dataset, 'diagnosis', missing, name,
            f'{np.mean(rows[name]["fused"]):.3f}', flush=True)
      done()
  return rows_by_missing, seconds

