r"""Many runs in one compiled program: a sweep over seeds and numeric fields.

  python -m experiments.sweep --config=experiments/configs/default.py \
      --workdir=/tmp/sweep --sweep='client.lr=[0.01,0.03,0.1];seed=[0,1,2]'

The product of the listed values gives the members. Every member's whole
training run (all rounds, with evaluation every `rounds.eval_every` rounds)
is one `lax.scan`, and the members are one `vmap` over a leading sweep axis
of the hyper-parameters, the data (one population per seed) and the keys:
one XLA program for the whole sweep. Fields that may be swept:
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
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
from ml_collections import config_flags

import fedmchain_jax as fmc
from fedmchain_jax import data as fdata
from experiments import cli
from experiments import config_checks
from experiments import distributed
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


def parse_sweep(spec: str) -> dict[str, list]:
  """'client.lr=[0.01,0.1];seed=[0,1]' -> {'client.lr': [...], 'seed': [...]}."""
  sweep = {}
  for part in filter(None, (p.strip() for p in spec.split(';'))):
    if '=' not in part:
      raise config_checks.ConfigError(
          'sweep', part, "each entry must read field=[v1,v2,...]")
    field, values = part.split('=', 1)
    try:
      parsed = ast.literal_eval(values.strip())
    except (ValueError, SyntaxError):
      raise config_checks.ConfigError(
          'sweep', part, 'values must be a Python list of numbers') from None
    if not isinstance(parsed, (list, tuple)) or not parsed:
      raise config_checks.ConfigError(
          'sweep', part, 'values must be a non-empty list')
    sweep[field.strip()] = list(parsed)
  return sweep


def expand(config, sweep: dict[str, list]) -> list[dict[str, Any]]:
  """The members (settings dicts), each validated against the config."""
  for field in sweep:
    if field not in train.SWEEPABLE:
      raise config_checks.ConfigError(
          f'sweep {field}', sweep[field],
          f'only these fields can be swept in one program: '
          f'{", ".join(train.SWEEPABLE)}')
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


def run_sweep(config, sweep: dict[str, list], workdir: str,
              sequential_baseline: bool = True,
              mesh: jax.sharding.Mesh | None = None) -> dict[str, Any]:
  """Runs every member in one program; writes and returns the results.

  With a mesh of axes ('sweep', 'clients') the members are sharded over
  'sweep' (padded with copies of member 0 to a multiple of its size) and
  each member's cohort over 'clients'.
  """
  config_checks.validate(config)
  members = expand(config, sweep)
  if config.rounds.num_rounds % config.rounds.eval_every:
    raise config_checks.ConfigError(
        'rounds.eval_every', config.rounds.eval_every,
        f'must divide rounds.num_rounds ({config.rounds.num_rounds}) in a '
        'sweep')
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
  numeric = [f for f in sweep if f != 'seed']
  hparams = {f: np.array([float(m[f]) for m in members], np.float32)
             for f in numeric}
  seeds_array = np.array(member_seeds, np.uint32)
  sample = {m: np.asarray(x[:1]) for m, x in per_seed[seeds[0]][1]
            .features.items()}
  blocks = config.rounds.num_rounds // config.rounds.eval_every

  def run_member(member_hparams, member_data, member_test, seed):
    init_key, run_key = jax.random.split(jax.random.key(seed))
    params = model.init(init_key, sample)['params']
    algorithm = train.build_algorithm(config, apply_fn, modalities,
                                      num_clients, mesh=client_mesh,
                                      hparams=member_hparams, params=params)
    state = algorithm.init(params)

    run_rounds = fmc.algorithms.scan_rounds(algorithm.run_round,
                                            config.rounds.eval_every)

    def block(state, _):
      state, metrics = run_rounds(state, member_data, run_key)
      return state, (metrics, evaluate(state.params, member_test))

    state, (metrics, evals) = jax.lax.scan(block, state, None,
                                           length=blocks)
    return metrics, evals, state.params

  count = len(members)
  client_mesh = None
  options = fmc.determinism.compiler_options(
      layout_independent=config.rounds.layout_independent_bits)
  if mesh is not None:
    # Pad the members to fill the sweep axis; the copies are dropped below.
    extra = -count % mesh.shape['sweep']
    pad = lambda x: np.concatenate([x, np.repeat(x[:1], extra, axis=0)])
    inputs = jax.tree.map(pad, (hparams, data, tests, seeds_array))
    by_member = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec('sweep'))
    # Every process holds the same host arrays and gives each of its devices
    # its slice: this works across hosts, where device_put cannot.
    hparams, data, tests, seeds_array = jax.tree.map(
        lambda x: jax.make_array_from_callback(
            x.shape, by_member, lambda index, x=x: x[index]), inputs)
    client_mesh = mesh
    replicated = jax.sharding.NamedSharding(mesh,
                                            jax.sharding.PartitionSpec())
    # Results come back replicated, so every process can read them.
    program = jax.jit(jax.vmap(run_member, spmd_axis_name='sweep'),
                      out_shardings=replicated, compiler_options=options)
  else:
    program = jax.jit(jax.vmap(run_member), compiler_options=options)
  tic = time.perf_counter()
  compiled = program.lower(hparams, data, tests, seeds_array).compile()
  compile_s = time.perf_counter() - tic
  tic = time.perf_counter()
  metrics, evals, params = jax.block_until_ready(
      compiled(hparams, data, tests, seeds_array))
  sweep_s = time.perf_counter() - tic
  metrics, evals, params = jax.tree.map(lambda x: x[:count],
                                        (metrics, evals, params))
  metrics, evals = jax.device_get((metrics, evals))
  # [members, blocks, eval_every] -> [members, rounds].
  metrics = {k: v.reshape(v.shape[0], -1) for k, v in metrics.items()}

  timing = {'members': len(members), 'compile_s': compile_s,
            'sweep_s': sweep_s}
  if sequential_baseline and mesh is None:
    one = jax.jit(run_member, compiler_options=options)
    first = jax.tree.map(lambda x: x[0], (hparams, data, tests, seeds_array))
    jax.block_until_ready(one(*first))  # Compile and warm up.
    tic = time.perf_counter()
    jax.block_until_ready(one(*first))
    timing['one_member_s'] = time.perf_counter() - tic
    timing['sequential_estimate_s'] = timing['one_member_s'] * len(members)
    timing['speedup'] = timing['sequential_estimate_s'] / sweep_s

  results = []
  writes = jax.process_index() == 0  # One writer on multi-host runs.
  if writes:
    os.makedirs(workdir, exist_ok=True)
  for i, settings in enumerate(members):
    member_dir = os.path.join(workdir, f'member_{i}')
    upload = np.cumsum(np.asarray(metrics['comm/upload_bytes'][i],
                                  np.float64))
    download = np.cumsum(np.asarray(metrics['comm/download_bytes'][i],
                                    np.float64))
    records = []
    for b in range(blocks):
      last = (b + 1) * config.rounds.eval_every - 1
      record = {'round': last + 1}
      record.update({k: float(v[i][b]) for k, v in evals.items()})
      record.update({k: float(v[i][last]) for k, v in metrics.items()
                     if k.startswith(train.ROUND_METRICS)})
      record['comm/upload_bytes'] = float(upload[last])
      record['comm/download_bytes'] = float(download[last])
      record['time/round_s'] = sweep_s / config.rounds.num_rounds / len(
          members)
      records.append(record)
    if writes:
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
  logging.info('sweep of %d members: %.1f s compile, %.1f s run%s', len(members),
               compile_s, sweep_s,
               f' (one member alone: {timing["one_member_s"]:.2f} s, '
               f'{timing["speedup"]:.1f}x)' if 'speedup' in timing else '')
  return {'timing': timing, 'members': results, 'summary': summary,
          'params': params}


def summarize(results, modalities) -> str:
  """Markdown: final accuracies per setting, mean ± std over seeds."""
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
      cells.append(f'{np.mean(values):.3f} ± {np.std(values):.3f}')
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
  logging.get_absl_handler().addFilter(
      lambda r: '/orbax/' not in r.pathname)
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
        raise config_checks.ConfigError(
            'sweep', None, 'pass --sweep or define sweep() in the config file')
      sweep = namespace['sweep']()
    result = run_sweep(config, sweep, _WORKDIR.value, _BASELINE.value,
                       make_mesh(_SWEEP_DEVICES.value))
  except (config_checks.ConfigError, fdata.DataError) as e:
    raise SystemExit(f'error: {e}') from None
  print(result['summary'])


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  app.run(main, flags_parser=cli.flags_parser('config'))
