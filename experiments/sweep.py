r"""Many runs in one compiled program: a sweep over seeds and numeric fields.

  python -m experiments.sweep --config=experiments/configs/default.py \
      --workdir=/tmp/sweep --sweep='client.lr=[0.01,0.03,0.1];seed=[0,1,2]'

The product of the listed values gives the members. The members are one
`vmap` over a leading sweep axis of the hyper-parameters, the data (one
population per seed) and the keys: one XLA program advances every member by
`rounds.eval_every` rounds (a `lax.scan`) and evaluates them, called once
per block under a progress bar. The stacked state and the metrics so far
are checkpointed every `rounds.checkpoint_every` rounds (on one host), so
Ctrl-C stops after the current block with a checkpoint and rerunning the
same sweep in the same workdir resumes (with more `rounds.num_rounds`, a
finished sweep goes on: `RESUMABLE_CHANGES`). Fields that may be swept:
experiments.train.SWEEPABLE. A config file may instead define `sweep()`
returning the same {field: [values]} mapping.

Writes DIR/member_<i>/metrics.jsonl (the single-run schema) and
DIR/member_<i>/settings.json, DIR/summary.md (per setting: rounds, final
fused and per-modality accuracy as mean and spread over seeds, uploaded and
downloaded MiB) and DIR/sweep.json with
the timing: the sweep's wall time against running one member alone times
the number of members.
"""

import ast
import itertools
import json
import os
import sys
import time
from typing import Any, Callable, NamedTuple

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
from ml_collections import config_flags
import tqdm

import fedmchain_jax as fmc
from fedmchain_jax import data as fdata
from experiments import cli
from experiments import config_checks
from experiments import distributed
from experiments import registry
from experiments import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A config file.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Output directory.')
_SWEEP = flags.DEFINE_string(
    'sweep', None, "'field=[v1,v2];field2=[...]'; default: the config "
    "file's sweep().")
_BASELINE = flags.DEFINE_bool('sequential_baseline', True,
                              'Time one member alone for the comparison.')
_SWEEP_DEVICES = flags.DEFINE_integer(
    'sweep_devices', 1, "With several devices: the mesh's 'sweep' axis size "
    "(the rest form the 'clients' axis).")


class SweepError(config_checks.ConfigError):
  """A bad --sweep entry: one line naming the entry and what is allowed."""

  def __init__(self, entry: str, allowed: str):
    ValueError.__init__(self, f'--sweep entry {entry!r} is invalid: '
                        f'{allowed}')
    self.field, self.value, self.allowed = 'sweep', entry, allowed


def parse_sweep(spec: str) -> dict[str, list]:
  """'client.lr=[0.01,0.1];seed=[0,1]' -> {'client.lr': [...],
  'seed': [...]}."""
  sweep = {}
  for part in filter(None, (p.strip() for p in spec.split(';'))):
    if '=' not in part:
      raise SweepError(part, 'each entry must read field=[v1,v2,...]')
    field, values = part.split('=', 1)
    try:
      parsed = ast.literal_eval(values.strip())
    except (ValueError, SyntaxError):
      raise SweepError(part, 'values must be a Python list of numbers'
                       ) from None
    if not isinstance(parsed, (list, tuple)) or not parsed:
      raise SweepError(part, 'values must be a non-empty list')
    sweep[field.strip()] = list(parsed)
  return sweep


def expand(config, sweep: dict[str, list]) -> list[dict[str, Any]]:
  """The members (settings dicts), each validated against the config."""
  fixed = registry.fixed_settings(config)
  for field in sweep:
    if field not in train.SWEEPABLE:
      raise SweepError(f'{field}={sweep[field]}',
                       f'only these fields can be swept in one program: '
                       f'{", ".join(train.SWEEPABLE)}')
    if field in fixed:
      raise SweepError(f'{field}={sweep[field]}',
                       f'algorithm {config.algorithm} fixes {field} at '
                       f'{fixed[field]!r}, so every member would run the '
                       'same; sweep another field')
  members = expand_settings(sweep)
  for settings in members:
    config_checks.validate(with_settings(config, settings))
  return members


def expand_settings(sweep: dict[str, list]) -> list[dict[str, Any]]:
  """The members' settings: the product of the listed values, in order."""
  return [dict(zip(sweep, values))
          for values in itertools.product(*sweep.values())]


def with_settings(config, settings):
  config = config.copy_and_resolve_references()
  for field, value in settings.items():
    node = config
    *parents, leaf = field.split('.')
    for part in parents:
      node = node[part]
    node[leaf] = type(node[leaf])(value)
  return config


def _pad_examples(data: fdata.FederatedData, slots: int):
  extra = slots - data.labels.shape[1]

  def pad(x):
    x = np.asarray(x)
    return np.pad(x, [(0, 0), (0, extra)] + [(0, 0)] * (x.ndim - 2))

  return data._replace(features={m: pad(x) for m, x in data.features.items()},
                       labels=pad(data.labels),
                       example_mask=pad(data.example_mask))


def make_mesh(sweep_devices: int) -> jax.sharding.Mesh | None:
  """A (sweep, clients) mesh over all devices, `sweep_devices` x the rest."""
  count = jax.device_count()
  if count == 1:
    return None
  if sweep_devices < 1 or count % sweep_devices:
    raise config_checks.ConfigError(
        'sweep_devices', sweep_devices,
        f'must divide the device count ({count})')
  devices = np.array(jax.devices()).reshape(sweep_devices,
                                            count // sweep_devices)
  return jax.sharding.Mesh(devices, ('sweep', 'clients'))


class _Setup(NamedTuple):
  """What every member shares and what is stacked over members."""
  members: list[dict[str, Any]]
  modalities: list[str]
  init_member: Callable  # (hparams, seed) -> state
  block_member: Callable  # (state, hparams, data, test, seed) -> state, ...
  inputs: tuple  # (hparams, data, tests, seeds), stacked over members.


def _setup(config, sweep, members, mesh) -> _Setup:
  """Builds each seed's data once, the model, and the members' functions
  (`block_member`: `rounds.eval_every` rounds as one lax.scan, then the
  evaluation)."""
  seeds = sorted({int(m.get('seed', config.seed)) for m in members})
  per_seed = {}
  for seed in seeds:
    seed_config = with_settings(config, {'seed': seed})
    train_np, test_np, num_classes = train.build_data(seed_config)
    fdata.validate(train_np, test_np, num_classes)
    per_seed[seed] = (train_np, test_np)
  shapes = {d.labels.shape[0] for d, _ in per_seed.values()}
  if len(shapes) != 1:
    raise config_checks.ConfigError(
        'seed', seeds, 'seeds must give populations of one number of clients '
        'to share a program')
  # Held-out splits may differ in size (validation splits): padded alike.
  held_out = max(t.labels.shape[0] for _, t in per_seed.values())
  slots = max(d.labels.shape[1] for d, _ in per_seed.values())
  modalities = sorted(next(iter(per_seed.values()))[0].features)
  config_checks.check_data(config, modalities, shapes.pop())
  model = train.build_model(config, modalities, num_classes)
  apply_fn = train.apply_fn_of(model)
  evaluate = fmc.evaluation.make_evaluate(apply_fn)
  num_clients = next(iter(per_seed.values()))[0].num_clients

  member_seeds = [int(m.get('seed', config.seed)) for m in members]
  stack = lambda trees: jax.tree.map(lambda *xs: np.stack(xs), *trees)
  data = stack([_pad_examples(per_seed[s][0], slots) for s in member_seeds])
  tests = stack([fmc.evaluation.batch_test_data(per_seed[s][1],
                                                config.eval.batch_size,
                                                held_out)
                 for s in member_seeds])
  hparams = {f: np.array([float(m[f]) for m in members], np.float32)
             for f in sweep if f != 'seed'}
  sample = {m: np.asarray(x[:1]) for m, x in per_seed[seeds[0]][1]
            .features.items()}
  eval_every = config.rounds.eval_every

  def algorithm_of(member_hparams, params):
    return train.build_algorithm(config, apply_fn, modalities, num_clients,
                                 mesh=mesh, hparams=member_hparams,
                                 params=params)

  def init_member(member_hparams, seed):
    init_key, _ = jax.random.split(jax.random.key(seed))
    params = model.init(init_key, sample)['params']
    return algorithm_of(member_hparams, params).init(params)

  def block_member(state, member_hparams, member_data, member_test, seed):
    _, run_key = jax.random.split(jax.random.key(seed))
    run_rounds = fmc.algorithms.scan_rounds(
        algorithm_of(member_hparams, state.params).run_round, eval_every)
    state, metrics = run_rounds(state, member_data, run_key)
    return state, metrics, evaluate(state.params, member_test)

  return _Setup(members, modalities, init_member, block_member,
                (hparams, data, tests, np.array(member_seeds, np.uint32)))


def _programs(setup: _Setup, mesh, options):
  """(inputs placed for the programs, init program, block program): the
  members vmapped, and with a mesh sharded over its 'sweep' axis (padded
  with copies of member 0 to fill it)."""
  if mesh is None:
    return (setup.inputs,
            jax.jit(jax.vmap(setup.init_member), compiler_options=options),
            jax.jit(jax.vmap(setup.block_member), donate_argnums=0,
                    compiler_options=options))
  extra = -len(setup.members) % mesh.shape['sweep']
  pad = lambda x: np.concatenate([x, np.repeat(x[:1], extra, axis=0)])
  by_member = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec('sweep'))
  # Every process holds the same host arrays and gives each of its devices
  # its slice: this works across hosts, where device_put cannot.
  inputs = jax.tree.map(
      lambda x: jax.make_array_from_callback(
          x.shape, by_member, lambda index, x=x: x[index]),
      jax.tree.map(pad, setup.inputs))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  # Metrics come back replicated, so every process can read them.
  init_program = jax.jit(jax.vmap(setup.init_member, spmd_axis_name='sweep'),
                         out_shardings=by_member, compiler_options=options)
  block_program = jax.jit(
      jax.vmap(setup.block_member, spmd_axis_name='sweep'),
      out_shardings=(by_member, replicated, replicated), donate_argnums=0,
      compiler_options=options)
  return inputs, init_program, block_program


def _train(config, sweep, workdir, step, state, inputs, history, names,
           count):
  """Runs the blocks left (resuming from the workdir's checkpoint), logging
  each block's progress; returns (state, history, seconds running)."""
  eval_every = config.rounds.eval_every
  blocks = config.rounds.num_rounds // eval_every
  done, sweep_s = 0, 0.0
  # Checkpoints on one process (a multi-host sweep reruns from its start).
  checkpointer = None
  if jax.process_count() == 1:
    checkpointer = fmc.checkpointing.Checkpointer(
        os.path.join(workdir, 'checkpoints'), save_every=1)
    done, state, history, sweep_s = _resume(checkpointer, workdir, config,
                                            sweep, state, history)
  progress = tqdm.tqdm(total=config.rounds.num_rounds,
                       initial=done * eval_every, unit='round', disable=None,
                       dynamic_ncols=True, leave=False,
                       desc=f'{count} members')

  def save(done, state, history, sweep_s):
    if checkpointer is not None:
      checkpointer.save(done * eval_every, {
          'state': state, 'history': history,
          'sweep_s': np.float64(sweep_s)}, force=True)
      _write_sweep_config(workdir, config, sweep)

  checkpoint_every = config.rounds.checkpoint_every
  try:
    with train.deferred_interrupt() as stop, train.logs_through(progress):
      while done < blocks:
        tic = time.perf_counter()
        state, *block = jax.block_until_ready(step(state, *inputs))
        sweep_s += time.perf_counter() - tic
        block = jax.device_get(block)
        for stored, part, keys in zip(history, block, names):
          for array, key in zip(stored, keys):
            array[done] = part[key]
        done += 1
        progress.update(eval_every)
        accuracy = block[1]['eval/accuracy'][:count]
        progress.set_postfix_str(
            f'best accuracy {accuracy.max():.3f} at round '
            f'{done * eval_every}', refresh=False)
        logging.info('round %d/%d: fused accuracy %.3f to %.3f over the %d '
                     'members (best: member %d); %.1f s running so far.',
                     done * eval_every, config.rounds.num_rounds,
                     accuracy.min(), accuracy.max(), count,
                     int(accuracy.argmax()), sweep_s)
        if (done * eval_every) % checkpoint_every < eval_every or (
            done == blocks):
          save(done, state, history, sweep_s)
        if stop.is_set() and done < blocks:
          if checkpointer is not None and (
              checkpointer.latest_round() != done * eval_every):
            save(done, state, history, sweep_s)
          raise train.Interrupted(done * eval_every)
  finally:
    progress.close()
    if checkpointer is not None:
      checkpointer.close()
  return state, history, sweep_s


def _one_member_seconds(setup: _Setup, blocks: int, options) -> float:
  """Seconds one member takes alone (member 0, compiled and warmed up)."""
  init_one = jax.jit(setup.init_member, compiler_options=options)
  step_one = jax.jit(setup.block_member, donate_argnums=0,
                     compiler_options=options)
  first = jax.tree.map(lambda x: x[0], setup.inputs)

  def one_member():
    one = init_one(first[0], first[3])
    for _ in range(blocks):
      one = step_one(one, *first)[0]
    return jax.block_until_ready(one)

  one_member()  # Compile and warm up.
  tic = time.perf_counter()
  one_member()
  return time.perf_counter() - tic


def _member_records(config, metrics, evals, i, seconds_a_round):
  """Member i's evaluation records, in the single run's schema."""
  upload = np.cumsum(np.asarray(metrics['comm/upload_bytes'][i], np.float64))
  download = np.cumsum(np.asarray(metrics['comm/download_bytes'][i],
                                  np.float64))
  records = []
  for b in range(config.rounds.num_rounds // config.rounds.eval_every):
    last = (b + 1) * config.rounds.eval_every - 1
    record = {'round': last + 1}
    record.update({k: float(v[i][b]) for k, v in evals.items()})
    record.update({k: float(v[i][last]) for k, v in metrics.items()
                   if k.startswith(train.ROUND_METRICS)})
    record['comm/upload_bytes'] = float(upload[last])
    record['comm/download_bytes'] = float(download[last])
    record['time/round_s'] = seconds_a_round
    records.append(record)
  return records


def _write_results(workdir, config, members, metrics, evals, timing,
                   modalities):
  """Writes each member's records and settings, summary.md and sweep.json
  (on process 0); returns (members' results, the summary)."""
  writes = jax.process_index() == 0  # One writer on multi-host runs.
  seconds_a_round = timing['sweep_s'] / config.rounds.num_rounds / len(
      members)
  results = []
  for i, settings in enumerate(members):
    records = _member_records(config, metrics, evals, i, seconds_a_round)
    if writes:
      member_dir = os.path.join(workdir, f'member_{i}')
      os.makedirs(member_dir, exist_ok=True)
      with open(os.path.join(member_dir, 'settings.json'), 'w') as f:
        json.dump(settings, f, sort_keys=True)
      with open(os.path.join(member_dir, 'metrics.jsonl'), 'w') as f:
        for record in records:
          f.write(json.dumps(record, sort_keys=True) + '\n')
    results.append({'settings': settings, 'final': records[-1]})
  summary = summarize(results, modalities)
  if writes:
    with open(os.path.join(workdir, 'summary.md'), 'w') as f:
      f.write(summary + '\n')
    with open(os.path.join(workdir, 'sweep.json'), 'w') as f:
      json.dump({'timing': timing, 'members': results}, f, indent=2,
                sort_keys=True)
  return results, summary


def timing_text(timing) -> str:
  """The sweep's timing in words."""
  text = (f'{timing["members"]} members: {timing["compile_s"]:.1f} s '
          f'compiling, {timing["sweep_s"]:.1f} s running')
  if 'speedup' in timing:
    text += (f'; one member alone runs in {timing["one_member_s"]:.2f} s, so '
             f'the members one after another would take '
             f'{timing["sequential_estimate_s"]:.1f} s: the sweep is '
             f'{timing["speedup"]:.2f} times as fast')
  return text


def finished(workdir: str, config, sweep) -> dict[str, Any] | None:
  """The results of this sweep if `workdir` holds it finished (its config
  and grid, all `rounds.num_rounds`, every member's records), else None:
  `run_sweep`'s return value, read back without building or compiling."""
  path = os.path.join(workdir, 'sweep_config.json')
  done = os.path.join(workdir, 'sweep.json')
  if jax.process_count() != 1 or not (os.path.exists(path) and
                                      os.path.exists(done)):
    return None
  with open(path) as f:
    if json.load(f) != _wanted(config, sweep):
      return None
  with open(done) as f:
    result = json.load(f)
  members = result['members']
  if (len(members) != len(expand_settings(sweep)) or
      any(m['final']['round'] != config.rounds.num_rounds for m in members)
      or not all(os.path.exists(os.path.join(workdir, f'member_{i}',
                                             'metrics.jsonl'))
                 for i in range(len(members)))):
    return None
  checkpointer = fmc.checkpointing.Checkpointer(
      os.path.join(workdir, 'checkpoints'), save_every=1)
  try:
    if checkpointer.latest_round() != config.rounds.num_rounds:
      return None
    state = checkpointer.restore(None)['state']
  finally:
    checkpointer.close()
  with open(os.path.join(workdir, 'summary.md')) as f:
    summary = f.read().rstrip('\n')
  return {'timing': result['timing'], 'members': members,
          'summary': summary,
          'params': jax.tree.map(lambda x: np.asarray(x)[:len(members)],
                                 state['params'])}


def run_sweep(config, sweep: dict[str, list], workdir: str,
              sequential_baseline: bool = True,
              mesh: jax.sharding.Mesh | None = None) -> dict[str, Any]:
  """Runs every member in one program; writes and returns the results.

  With a mesh of axes ('sweep', 'clients') the members are sharded over
  'sweep' (padded with copies of member 0 to a multiple of its size) and
  each member's cohort over 'clients'. A workdir that holds this sweep
  finished returns its results at once (`finished`).
  """
  config_checks.validate(config)
  members = expand(config, sweep)
  train.log_fixed_settings(config)
  if config.rounds.num_rounds % config.rounds.eval_every:
    raise config_checks.ConfigError(
        'rounds.eval_every', config.rounds.eval_every,
        f'must divide rounds.num_rounds ({config.rounds.num_rounds}) in a '
        'sweep')
  done = finished(workdir, config, sweep)
  if done is not None:
    logging.info('%s holds this sweep finished (%d rounds); nothing to run.',
                 workdir, config.rounds.num_rounds)
    return done
  setup = _setup(config, sweep, members, mesh)
  count = len(members)
  blocks = config.rounds.num_rounds // config.rounds.eval_every
  options = fmc.determinism.compiler_options(
      layout_independent=config.rounds.layout_independent_bits)
  inputs, init_program, block_program = _programs(setup, mesh, options)
  tic = time.perf_counter()
  state = init_program(inputs[0], inputs[3])
  lowered = block_program.lower(state, *inputs)
  step = lowered.compile()
  compile_s = time.perf_counter() - tic
  # Each block's metrics [members, eval_every] and evaluation [members],
  # kept for all blocks (and checkpointed with the state) as lists in the
  # order of `names` (orbax keys cannot hold the metrics' slashes).
  shapes = lowered.out_info[1:]
  names = [sorted(part) for part in shapes]
  history = [[np.zeros((blocks,) + part[k].shape, part[k].dtype)
              for k in keys] for part, keys in zip(shapes, names)]
  state, history, sweep_s = _train(config, sweep, workdir, step, state,
                                   inputs, history, names, count)
  params = jax.tree.map(lambda x: x[:count], state.params)
  metrics, evals = (dict(zip(keys, stored))
                    for stored, keys in zip(history, names))
  # [blocks, members, eval_every] -> [members, rounds]; [blocks, members]
  # -> [members, blocks].
  metrics = {k: np.moveaxis(v, 0, 1)[:count].reshape(count, -1)
             for k, v in metrics.items()}
  evals = {k: np.moveaxis(v, 0, 1)[:count] for k, v in evals.items()}

  timing = {'members': count, 'compile_s': compile_s, 'sweep_s': sweep_s}
  if sequential_baseline and mesh is None:
    timing['one_member_s'] = _one_member_seconds(setup, blocks, options)
    timing['sequential_estimate_s'] = timing['one_member_s'] * count
    timing['speedup'] = timing['sequential_estimate_s'] / sweep_s
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
  results, summary = _write_results(workdir, config, members, metrics, evals,
                                    timing, setup.modalities)
  logging.info('sweep of %s.', timing_text(timing))
  return {'timing': timing, 'members': results, 'summary': summary,
          'params': params}


# Fields a resumed sweep may change: how long it runs (a finished sweep
# extended to more rounds goes on from its last checkpoint), how often it
# saves and where the data lies.
RESUMABLE_CHANGES = ('rounds.num_rounds', 'rounds.checkpoint_every',
                     'data.data_dir', 'data.manual_dir')


def _wanted(config, sweep) -> dict:
  """What sweep_config.json holds for this sweep."""
  return json.loads(json.dumps(
      {'config': json.loads(config.to_json()),
       'sweep': {k: list(v) for k, v in sweep.items()}}))


def continues(workdir: str, config, sweep) -> bool:
  """Whether `workdir` holds checkpoints of this sweep, perhaps of fewer
  rounds (`RESUMABLE_CHANGES`), that running it would go on from."""
  path = os.path.join(workdir, 'sweep_config.json')
  if not os.path.exists(path):
    return False
  with open(path) as f:
    saved = json.load(f)
  wanted = _wanted(config, sweep)
  rounds = [int(name) for name in
            _listdir(os.path.join(workdir, 'checkpoints')) if name.isdigit()]
  return (saved['sweep'] == wanted['sweep'] and
          not train.changed_fields(saved['config'], wanted['config'],
                                   RESUMABLE_CHANGES) and
          bool(rounds) and max(rounds) <= config.rounds.num_rounds)


def _listdir(path):
  return os.listdir(path) if os.path.isdir(path) else []


def _resume(checkpointer, workdir, config, sweep, state, history):
  """(blocks done, state, history, seconds so far): from the workdir's
  latest checkpoint when it holds this sweep (perhaps run for fewer
  rounds), else from the start."""
  os.makedirs(workdir, exist_ok=True)
  wanted = _wanted(config, sweep)
  if checkpointer.rounds():
    with open(os.path.join(workdir, 'sweep_config.json')) as f:
      saved = json.load(f)
    changes = train.changed_fields(saved['config'], wanted['config'],
                                   RESUMABLE_CHANGES)
    if changes or saved['sweep'] != wanted['sweep']:
      raise config_checks.ConfigError(
          'workdir', workdir, 'it holds a sweep of another config or grid '
          f'({f"config.{changes[0][0]}" if changes else "sweep"} differs; '
          f'only {", ".join(RESUMABLE_CHANGES)} may change): rerun that '
          'sweep to resume it, or use a new workdir')
    latest = checkpointer.latest_round()
    if latest > config.rounds.num_rounds:
      raise config_checks.ConfigError(
          'rounds.num_rounds', config.rounds.num_rounds,
          f'the sweep in {workdir} has run {latest} rounds already: ask for '
          'at least as many, or use a new workdir')
    # The history as saved: one row per block of the saved sweep's length.
    eval_every = config.rounds.eval_every
    saved_blocks = saved['config']['rounds']['num_rounds'] // eval_every
    template = [[np.zeros((saved_blocks,) + x.shape[1:], x.dtype)
                 for x in part] for part in history]
    latest, restored = checkpointer.restore_latest_valid(
        {'state': state, 'history': template, 'sweep_s': np.float64(0)},
        warn=logging.warning)
    done = latest // eval_every
    if done:
      logging.info('Resuming the sweep in %s from round %d.', workdir, latest)
    for stored, part in zip(history, restored['history']):
      for array, saved_array in zip(stored, part):
        array[:done] = np.asarray(saved_array)[:done]
    return done, restored['state'], history, float(restored['sweep_s'])
  _write_sweep_config(workdir, config, sweep)
  return 0, state, history, 0.0


def _write_sweep_config(workdir, config, sweep):
  """Records which sweep the checkpoints hold, and so the length of their
  history (an extended sweep rewrites it with its first checkpoint)."""
  with open(os.path.join(workdir, 'sweep_config.json'), 'w') as f:
    json.dump(_wanted(config, sweep), f, indent=2, sort_keys=True)


def summarize(results, modalities) -> str:
  """Markdown: final accuracies per setting, mean ± standard deviation over
  seeds (the value alone for one seed)."""
  groups: dict[tuple, list] = {}
  for result in results:
    key = tuple(sorted((k, v) for k, v in result['settings'].items()
                       if k != 'seed'))
    groups.setdefault(key, []).append(result['final'])
  columns = ['eval/accuracy'] + [f'eval/accuracy/{m}' for m in modalities]
  lines = ['| setting | seeds | rounds | ' + ' | '.join(columns) +
           ' | upload MiB | download MiB |',
           '| --- | --- | --- | ' + ' | '.join('---' for _ in columns) +
           ' | --- | --- |']
  for key, finals in groups.items():
    name = ', '.join(f'{k}={v}' for k, v in key) or '(config)'
    cells = []
    for column in columns:
      values = [f[column] for f in finals]
      cells.append(f'{np.mean(values):.3f} ± {np.std(values):.3f}'
                   if len(values) > 1 else f'{values[0]:.3f}')
    mib = lambda field: np.mean([f[field] for f in finals]) / 2**20
    lines.append(f'| {name} | {len(finals)} | {finals[0]["round"]} | ' +
                 ' | '.join(cells) + f' | {mib("comm/upload_bytes"):.1f} | '
                 f'{mib("comm/download_bytes"):.1f} |')
  return '\n'.join(lines)


def main(argv):
  del argv
  distributed.initialize()
  logging.set_verbosity(logging.INFO)
  cli.quiet_platform_probe()
  logging.get_absl_handler().addFilter(cli.not_library_chatter)
  config = _CONFIG.value
  try:
    if _SWEEP.value:
      sweep = parse_sweep(_SWEEP.value)
    else:
      module = config_flags.get_config_filename(flags.FLAGS['config'])
      namespace = {}
      with open(module) as f:
        exec(compile(f.read(), module, 'exec'), namespace)  # pylint: disable=exec-used
      if 'sweep' not in namespace:
        raise SystemExit(f'error: no sweep given: pass --sweep=... or '
                         f'define sweep() in {module}')
      sweep = namespace['sweep']()
    result = run_sweep(config, sweep, _WORKDIR.value, _BASELINE.value,
                       make_mesh(_SWEEP_DEVICES.value))
  except (config_checks.ConfigError, fdata.DataError) as e:
    raise SystemExit(f'error: {e}') from None
  except train.Interrupted as e:
    print(e, file=sys.stderr)
    sys.exit(cli.INTERRUPTED)
  print(result['summary'])


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=cli.flags_parser('config'))
