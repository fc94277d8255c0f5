"""Runs one federated experiment from a config: the importable runner.

`train_and_evaluate(config, workdir)` validates the config, builds the data,
model and algorithm, compiles the round once, and loops over rounds with
evaluation, `metrics.jsonl` and orbax checkpoints in `workdir`. A second call
with the same workdir resumes from the latest checkpoint.
"""

import contextlib
import json
import os
import signal
import threading
import time
from typing import Any, Callable, NamedTuple

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

import fedmchain_jax as fmc
from fedmchain_jax import checkpointing
from fedmchain_jax import metrics_io
from fedmchain_jax.data import av_raw
from experiments import config_checks
from experiments import registry


# Fields a resumed run may change: how long, how often to save, where the
# data lies, and how the work is laid out (not what is computed). A field
# missing from a saved config (a run from before it existed) counts as
# changed.
RESUMABLE_CHANGES = ('rounds.num_rounds', 'rounds.checkpoint_every',
                     'rounds.chunk_size', 'rounds.rounds_per_call',
                     'rounds.shard_clients',
                     'rounds.agreement_dtype', 'rounds.agreement_row_groups',
                     'rounds.agreement_materialize',
                     'eval.batch_size', 'eval.aggregation_metrics',
                     'data.data_dir', 'data.manual_dir')
# Fields added later, with how runs saved before them behaved: a saved config
# without one of these is read as having this value.
SAVED_DEFAULTS = {'rounds.layout_independent_bits': True,
                  'fedmchain.aggregator': 'ssca',
                  'fedmchain.normalize': 'senders',  # Saved before it existed.
                  'data.validation_fraction': 0.0, 'eval.split': 'test',
                  'model.encoder': 'mlp', 'model.dtype': 'float32'}


class ResumeError(ValueError):
  """The workdir holds a run this config cannot continue."""


class Interrupted(Exception):
  """Ctrl-C stopped the run after `round_number` rounds, all of them
  checkpointed: rerunning resumes from there."""

  def __init__(self, round_number: int):
    self.round_number = round_number
    super().__init__(f'interrupted after round {round_number}; rerun the '
                     f'same command to resume from round {round_number}')


@contextlib.contextmanager
def deferred_interrupt():
  """Within it, a first Ctrl-C only sets the returned event (the loop
  stops at the end of its call, with a checkpoint); a second one
  interrupts at once. Off the main thread, Ctrl-C is left alone."""
  requested = threading.Event()
  if threading.current_thread() is not threading.main_thread():
    yield requested
    return

  def handler(signum, frame):
    del signum, frame
    if requested.is_set():
      raise KeyboardInterrupt
    requested.set()
    logging.warning('Stopping after this call of the round (Ctrl-C again '
                    'stops at once, losing the rounds since the last '
                    'checkpoint).')

  before = signal.signal(signal.SIGINT, handler)
  try:
    yield requested
  finally:
    signal.signal(signal.SIGINT, before)


class _ThroughBar:
  """A stream for log lines that prints them above the progress bar."""

  def __init__(self, progress, stream):
    self._progress, self._stream = progress, stream

  def write(self, text):
    if text.strip():
      self._progress.write(text.rstrip('\n'), file=self._stream)

  def flush(self):
    self._stream.flush()


@contextlib.contextmanager
def logs_through(progress):
  """absl's console lines go through the bar (tqdm.write) while it shows,
  so the two do not share a line."""
  handler = getattr(logging.get_absl_handler(), 'python_handler', None)
  if progress.disable or handler is None:
    yield
    return
  stream = handler.stream
  handler.stream = _ThroughBar(progress, stream)
  try:
    yield
  finally:
    handler.stream = stream


def _flatten_config(tree, prefix=''):
  flat = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      flat.update(_flatten_config(value, name + '.'))
    else:
      flat[name] = value
  return flat


def changed_fields(saved: dict, current: dict,
                   allowed=RESUMABLE_CHANGES) -> list[tuple[str, Any, Any]]:
  """(field, saved value, current value) for each field of two configs (as
  JSON dicts) that differs, except the `allowed` ones; a field missing from
  `saved` is read at its `SAVED_DEFAULTS` value."""
  saved, current = _flatten_config(saved), _flatten_config(current)
  changes = []
  for name in sorted(set(saved) | set(current)):
    before = saved.get(name, SAVED_DEFAULTS.get(name))
    if name not in allowed and before != current.get(name):
      changes.append((name, before, current.get(name)))
  return changes


def check_resumable(config, workdir: str) -> None:
  """Refuses to continue a run in `workdir` with a config that changes it.

  Raises:
    ResumeError: naming the first field whose value differs.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  with open(path) as f:
    saved = json.load(f)
  changes = changed_fields(saved, json.loads(config.to_json()))
  if changes:
    name, before, after = changes[0]
    raise ResumeError(
        f'--workdir={workdir} holds a run with config.{name}='
        f'{before!r}; this config has {after!r}. '
        'Resume with the same config (only '
        f'{", ".join(RESUMABLE_CHANGES)} may change) or use a new workdir')


def build_data(config
               ) -> tuple[fmc.data.FederatedData, fmc.data.TestData, int]:
  """The train population, the held-out split (NumPy) and the class count
  (`registry.DATASETS`)."""
  if config.data.name not in registry.DATASETS:
    raise config_checks.ConfigError(
        'data.name', config.data.name,
        f'must be one of {", ".join(registry.DATASETS)}')
  try:
    return registry.DATASETS[config.data.name].load(config)
  except av_raw.RawDataError as e:
    raise config_checks.ConfigError('data.manual_dir',
                                    config.data.manual_dir, str(e)) from None


def log_fixed_settings(config) -> None:
  """One log line naming the fields the config's preset sets whatever the
  config holds (`registry.fixed_settings`), where they differ."""
  changed = {k: v for k, v in registry.fixed_settings(config).items()
             if config_checks.fields.get(config, k) != v}
  if changed:
    logging.info('algorithm %s sets %s (the config has %s).',
                 config.algorithm,
                 ', '.join(f'{k}={v!r}' for k, v in changed.items()),
                 ', '.join(f'{config_checks.fields.get(config, k)!r}'
                           for k in changed))


def build_model(config, modalities, num_classes):
  return registry.MODELS[registry.MODEL](config, modalities, num_classes)


def apply_fn_of(model):
  def apply_fn(params, features, modality_mask=None, only=None):
    return model.apply({'params': params}, features, modality_mask, only)
  return apply_fn


def make_mesh(config) -> jax.sharding.Mesh | None:
  """A 1-D mesh with axis 'clients' over all devices, or None for one."""
  if not config.rounds.shard_clients or jax.device_count() == 1:
    return None
  return jax.sharding.Mesh(np.array(jax.devices()), ('clients',))


# The round's metrics a record keeps (the last round before the evaluation);
# bytes are added up over the rounds instead.
ROUND_METRICS = ('train/', 'agg/', 'comm/kept_fraction')


# Numeric fields that may be traced values (a sweep vmaps over them).
SWEEPABLE = ('seed', 'client.lr', 'server.lr', 'fedprox.mu',
             'fedmchain.reg_lambda', 'fedmchain.rho', 'fedmchain.tau',
             'ogm.alpha')


# `rounds.chunk_size = -1` on one CPU device trains the cohort in chunks of
# clients whose float32 parameters fill about AUTO_CHUNK_BYTES (a power of
# two of clients in AUTO_CHUNK_RANGE), so that a chunk's weights stay in
# cache across its local steps (reference model: chunks of 4; tiny model:
# 32; benchmarks/RESULTS.md).
AUTO_CHUNK_BYTES = 8 * 2**20
AUTO_CHUNK_RANGE = (2, 64)
# The chunk when the parameters are not given.
AUTO_CHUNK = 16


def auto_chunk_size(params) -> int:
  """Clients a chunk for `rounds.chunk_size = -1`, from the size of one
  client's parameters (a pytree of arrays or shapes)."""
  size = fmc.algorithms.base.tree_bytes(params)
  clients = max(1, AUTO_CHUNK_BYTES // max(int(size), 1))
  low, high = AUTO_CHUNK_RANGE
  return min(high, max(low, 1 << (clients.bit_length() - 1)))


def chunk_size_of(config, mesh=None, params=None) -> int | None:
  """The `Placement.chunk_size` for `config.rounds.chunk_size`:
  None (whole cohort) for 0, and for -1 unless on one CPU device with a
  cohort larger than the automatic chunk (`auto_chunk_size(params)`, or
  `AUTO_CHUNK` without params)."""
  chunk = config.rounds.chunk_size
  if chunk == -1:
    on_cpu = mesh is None and jax.default_backend() == 'cpu'
    chunk = AUTO_CHUNK if params is None else auto_chunk_size(params)
    if not on_cpu or config.rounds.cohort_size <= chunk:
      chunk = 0
  return chunk or None


def build_algorithm(config, apply_fn, modalities, num_clients, mesh=None,
                    hparams=None, params=None) -> fmc.FederatedAlgorithm:
  """The config's algorithm (`registry.ALGORITHMS`); `hparams` {field:
  value} overrides SWEEPABLE fields with values that may be JAX tracers;
  `params` (one client's, or their shapes) size the automatic chunk
  (`chunk_size_of`)."""
  hparams = dict(hparams or {})

  def value(field):
    if field in hparams:
      return hparams[field]
    node = config
    for part in field.split('.'):
      node = node[part]
    return node

  if config.algorithm not in registry.ALGORITHMS:
    raise config_checks.ConfigError(
        'algorithm', config.algorithm,
        f'must be one of {", ".join(registry.ALGORITHMS)}')
  faults = fmc.faults.FaultModel(
      dropout_rate=config.faults.dropout_rate,
      nonfinite_rate=config.faults.nonfinite_rate,
      attack_fraction=config.faults.attack_fraction,
      attack=config.faults.attack, attack_scale=config.faults.attack_scale)
  placement = fmc.placement.Placement(
      chunk_size=chunk_size_of(config, mesh, params), mesh=mesh,
      mesh_reduction=config.rounds.mesh_reduction)
  return registry.ALGORITHMS[config.algorithm].build(
      config, value, apply_fn, modalities, num_clients, placement, faults)


def init_params(model, test: fmc.data.TestData, key):
  sample = {m: np.asarray(x[:1]) for m, x in test.features.items()}
  return model.init(key, sample)['params']


def _summary(record: dict[str, Any], num_rounds: int) -> str:
  per_modality = ', '.join(
      f'{k.rsplit("/", 1)[1]} {v:.3f}' for k, v in sorted(record.items())
      if k.startswith('eval/accuracy/'))
  return (f'round {record["round"]}/{num_rounds}: '
          f'accuracy {record["eval/accuracy"]:.3f} ({per_modality}), '
          f'train loss {record["train/loss"]:.4f}, '
          f'{1e3 * record["time/round_s"]:.1f} ms/round, '
          f'uploaded {record["comm/upload_bytes"] / 2**20:.1f} MiB')


def _finished(config, workdir: str) -> list[dict[str, Any]] | None:
  """The records of a run in `workdir` that has done all its rounds (its
  last checkpoint and evaluation at `rounds.num_rounds`), else None."""
  num_rounds = config.rounds.num_rounds
  checkpoints = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(os.path.join(checkpoints, str(num_rounds))):
    return None
  if any(name.isdigit() and int(name) > num_rounds
         for name in os.listdir(checkpoints)):
    return None  # A longer run's checkpoints: resuming rolls back.
  records = metrics_io.MetricsWriter(
      os.path.join(workdir, 'metrics.jsonl')).read()
  if not records or records[-1]['round'] != num_rounds:
    return None
  return records


class _Run(NamedTuple):
  """What a run builds before its first round."""
  algorithm: fmc.FederatedAlgorithm
  apply_fn: Callable
  state: Any
  data: fmc.data.FederatedData
  test_batches: Any
  run_key: jax.Array
  replicated: jax.sharding.Sharding | None


def _build(config) -> _Run:
  """The data, model and algorithm of a config, and the initial state."""
  train_np, test_np, num_classes = build_data(config)
  fmc.data.validate(train_np, test_np, num_classes)
  modalities = sorted(train_np.features)
  config_checks.check_data(config, modalities, train_np.num_clients)
  model = build_model(config, modalities, num_classes)
  apply_fn = apply_fn_of(model)
  mesh = make_mesh(config)
  if mesh is not None:
    logging.info('Sharding the cohort over %d devices (%s sums over clients).',
                 mesh.size, config.rounds.mesh_reduction)
  init_key, run_key = jax.random.split(jax.random.key(config.seed))
  params = init_params(model, test_np, init_key)
  algorithm = build_algorithm(config, apply_fn, modalities,
                              train_np.num_clients, mesh, params=params)
  # Data and server state are replicated; the round shards the cohort.
  replicated = (None if mesh is None else jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec()))
  test_batches = fmc.evaluation.batch_test_data(test_np,
                                                config.eval.batch_size)
  return _Run(algorithm, apply_fn,
              jax.device_put(algorithm.init(params), replicated),
              jax.device_put(train_np, replicated),
              jax.device_put(test_batches, replicated), run_key, replicated)


class _Loop:
  """The rounds of a run: compiled calls of up to `rounds_per_call`
  rounds, evaluated, logged and checkpointed as the config says."""

  def __init__(self, config, workdir, run: _Run):
    self.config, self.run = config, run
    self.checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, 'checkpoints'), config.rounds.checkpoint_every)
    self.writer = metrics_io.MetricsWriter(
        os.path.join(workdir, 'metrics.jsonl'))
    self.board = None
    self.options = fmc.determinism.compiler_options(
        layout_independent=config.rounds.layout_independent_bits)
    self.round_fns = {}
    self.round_times = []

  def restore(self, workdir):
    """(round, state, bytes up, bytes down) from the latest valid
    checkpoint, or the start; drops the records of later rounds."""
    counters = {'upload_bytes': np.zeros((), np.float64),
                'download_bytes': np.zeros((), np.float64)}
    try:
      latest, restored = self.checkpointer.restore_latest_valid(
          {'state': self.run.state, 'counters': counters},
          warn=logging.warning,
          quarantine=os.path.join(workdir, 'unreadable_checkpoints'))
    except ValueError as e:
      raise ResumeError(str(e)) from None
    state = self.run.state
    if latest is not None:
      state = jax.device_put(restored['state'], self.run.replicated)
      counters = restored['counters']
      logging.info('Resumed from the checkpoint of round %d in %s.', latest,
                   workdir)
    start = int(state.round)
    self.writer.truncate_after(start)
    self.board = metrics_io.TensorBoardWriter(
        os.path.join(workdir, 'tensorboard'), purge_after=start)
    return (start, state, float(counters['upload_bytes']),
            float(counters['download_bytes']))

  def rounds_fn(self, num, state):
    """The compiled call that runs `num` rounds (one program per count)."""
    if num not in self.round_fns:
      run = (self.run.algorithm.run_round if num == 1 else
             fmc.algorithms.scan_rounds(self.run.algorithm.run_round, num))
      self.round_fns[num] = jax.jit(
          run, donate_argnums=0, compiler_options=self.options).lower(
              state, self.run.data, self.run.run_key).compile()
    return self.round_fns[num]

  def compile(self, start, state):
    tic = time.perf_counter()
    if start < self.config.rounds.num_rounds:
      self.rounds_fn(self.rounds_in_call(start), state)
    self.eval_fn = jax.jit(fmc.evaluation.make_evaluate(self.run.apply_fn),
                           compiler_options=self.options).lower(
                               state.params, self.run.test_batches).compile()
    logging.info('Compiled the round and evaluation in %.1f s.',
                 time.perf_counter() - tic)

  def rounds_in_call(self, done):
    """Up to rounds_per_call rounds, ending at or before the next round
    that is evaluated or checkpointed."""
    rounds = self.config.rounds
    stop = min(rounds.num_rounds,
               (done // rounds.eval_every + 1) * rounds.eval_every,
               (done // rounds.checkpoint_every + 1) * rounds.checkpoint_every)
    return min(rounds.rounds_per_call, stop - done)

  def save(self, round_number, state, upload, download, force=False):
    self.checkpointer.save(round_number, {
        'state': state,
        'counters': {'upload_bytes': np.float64(upload),
                     'download_bytes': np.float64(download)},
    }, force=force)

  def evaluate(self, round_number, state, metrics, upload, download):
    """Writes the evaluation's record (metrics.jsonl, TensorBoard, log)."""
    evaluated = jax.device_get(self.eval_fn(state.params,
                                            self.run.test_batches))
    record = {'round': round_number}
    record.update({k: float(v) for k, v in evaluated.items()})
    record.update({k: float(v) for k, v in metrics.items()
                   if k.startswith(ROUND_METRICS)})
    record['comm/upload_bytes'] = upload
    record['comm/download_bytes'] = download
    record['time/round_s'] = float(np.mean(self.round_times))
    self.round_times.clear()
    self.writer.write(record)
    self.board.write(round_number, {k: v for k, v in record.items()
                                    if k != 'round'})
    logging.info('%s', _summary(record, self.config.rounds.num_rounds))
    return record

  def one_call(self, round_number, state, upload, download, progress):
    """Runs the next call's rounds, then evaluates and checkpoints if due."""
    num = self.rounds_in_call(round_number)
    run = self.rounds_fn(num, state)  # compiled before the clock starts
    tic = time.perf_counter()
    state, metrics = run(state, self.run.data, self.run.run_key)
    metrics = jax.device_get(metrics)
    self.round_times.extend([(time.perf_counter() - tic) / num] * num)
    # Fields [num] when num > 1: add up the bytes round by round (as one
    # round a call does), keep the last round's other metrics.
    for i in range(num):
      one = metrics if num == 1 else jax.tree.map(lambda x, i=i: x[i],
                                                  metrics)
      upload += float(one['comm/upload_bytes'])
      download += float(one['comm/download_bytes'])
    round_number += num
    progress.update(num)
    rounds = self.config.rounds
    last = round_number == rounds.num_rounds
    if round_number % rounds.eval_every == 0 or last:
      record = self.evaluate(round_number, state, one, upload, download)
      progress.set_postfix_str(
          f'accuracy {record["eval/accuracy"]:.3f} at round {round_number}',
          refresh=False)
    if round_number % rounds.checkpoint_every == 0 or last:
      self.save(round_number, state, upload, download, force=last)
    return round_number, state, upload, download

  def close(self):
    if self.board is not None:
      self.board.close()
    self.checkpointer.close()


def _write_config(config, workdir):
  config_path = os.path.join(workdir, 'config.json')
  with open(config_path + '.tmp', 'w') as f:
    f.write(config.to_json(indent=2, sort_keys=True))
  os.replace(config_path + '.tmp', config_path)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> list[dict[str, Any]]:
  """Trains, evaluates and checkpoints; returns all metrics records so far.

  A run whose workdir holds all its rounds returns their records at once.

  Raises:
    config_checks.ConfigError: on an invalid config, before any compiling.
    Interrupted: Ctrl-C stopped it (after a checkpoint of the last round
      done, so that the same call resumes from there).
  """
  config_checks.validate(config)
  log_fixed_settings(config)
  os.makedirs(workdir, exist_ok=True)
  checkpoints_dir = os.path.join(workdir, 'checkpoints')
  if os.path.isdir(checkpoints_dir) and os.listdir(checkpoints_dir):
    check_resumable(config, workdir)
    done = _finished(config, workdir)
    if done is not None:
      logging.info('%s holds all %d rounds already (the last evaluation: '
                   '%s); nothing to run.', workdir, config.rounds.num_rounds,
                   _summary(done[-1], config.rounds.num_rounds))
      return done

  loop = _Loop(config, workdir, _build(config))
  num_rounds = config.rounds.num_rounds
  try:
    round_number, state, upload, download = loop.restore(workdir)
    _write_config(config, workdir)
    loop.compile(round_number, state)
    # A bar with rounds done, rounds/s and ETA on terminals (off in logs).
    progress = tqdm.tqdm(total=num_rounds, initial=round_number,
                         unit='round', disable=None, dynamic_ncols=True,
                         leave=False)
    try:
      with deferred_interrupt() as stop, logs_through(progress):
        while round_number < num_rounds:
          round_number, state, upload, download = loop.one_call(
              round_number, state, upload, download, progress)
          if stop.is_set() and round_number < num_rounds:
            if loop.checkpointer.latest_round() != round_number:
              loop.save(round_number, state, upload, download, force=True)
            raise Interrupted(round_number)
    finally:
      progress.close()
  finally:
    loop.close()
  return loop.writer.read()
