r"""Benchmark harness: the cost of one federated round and of its parts.

  python -m benchmarks.bench --workload=reference [--json]
  python -m benchmarks.bench --workload=tiny --cohort_size=1024
  python -m benchmarks.bench --algorithm=fedavg --hidden=128,128 \
      --cohort_size=256 --chunk_size=64 --repeats=5
  python -m benchmarks.bench --algorithm=fedmchain,fedavg \
      --cohort_size=64,256,1024,4096 --noloop_baseline --json

Lists of algorithms and cohort sizes run one after another in one process
(one JSON line each with --json; a run that fails, out of memory say, prints
its "error" and the others go on). Reports, all measured in the same process
on the default device:
  compile_s              lowering + compiling the round
  round_ms, rounds_per_s median round time over --repeats after --warmup
                         (with --rounds_per_call=K, calls of K rounds in
                         one lax.scan: the call's time / K)
  round_cpu_ms           median CPU time (user + system, all threads) of the
                         process per round: on a shared host whose cores
                         are partly stolen, compare runs by it (and by
                         local_cpu_ms, aggregate_cpu_ms of the parts)
  client_updates_per_s   C / round time
  examples_per_s         C * S * B / round time
  round_tflops           local-training FLOPs (as below) / round time
  local_ms, local_tflops, local_share_of_peak
                         local training alone (cohort sampling excluded) and
                         its FLOP/s (analytic matrix-product FLOPs: per
                         example-step 6 W for trained kernel entries W, 4 W
                         for the layer reading the data, which has no input
                         gradient, 2 W for forward-only logits) against...
  peak_tflops            ...a matrix product on this device in the run's
                         --dtype (2048^3 on CPU, 8192^3 elsewhere; default
                         precision, as in training)
  products_tflops, local_share_of_products
                         the FLOP/s of one training step's matrix products
                         alone (every kernel's forward, weight gradient and
                         input gradient past the data layer), vmapped over
                         the clients a device trains at once (a chunk or
                         the cohort, over the devices), each with its own
                         operands: what this device reaches on the
                         workload's own small products (on CPU, XLA runs a
                         batch of them as a loop of single products), and
                         local training's FLOP/s against it (times the
                         devices)
  sample_ms              drawing and gathering the whole cohort alone (the
                         breakdown's local training reads that cohort; the
                         round gathers each client's batches inside local
                         training instead, per chunk with --chunk_size)
  aggregate_ms, aggregate_share
                         upload, aggregation and server step alone, and their
                         share of the round, from what local training hands
                         over (`FederatedAlgorithm.aggregate` of
                         `train_cohort`'s output: the round's two halves)
                         (the three parts: --breakdown, the default)
  memory_mb              XLA's estimate of the round's peak memory
                         (arguments + outputs + temporaries); max_rss_mb, and
                         device_peak_mb where the device reports it
  loop_round_ms, vmap_speedup
                         the same round as a Python loop over clients calling
                         a jitted per-client update (which gathers the
                         client's batches) on one device, after the same
                         jitted cohort draw and before the jitted
                         aggregation; the ratio to the vmapped round
  page_faults_per_round  minor page faults of the process per timed round
                         (on CPU, first touches of XLA's fresh buffers)
  xla_flags, glibc_tunables
                         the environment's XLA_FLAGS and GLIBC_TUNABLES
                         (glibc.malloc.hugetlb=1 backs XLA's buffers with
                         huge pages: BUILD.md, "Multiple devices and large
                         cohorts")
  devices                devices the cohort is sharded over (--cpu_devices=N
                         splits a CPU into N; one per core lets each core
                         run its own clients' small products)
  chunk_clients          clients a chunk of local training as run (0: the
                         whole cohort; --chunk_size=-1 resolves to
                         `train.chunk_size_of`)
  mesh_reduction         with several devices, --mesh_reduction: how sums
                         over clients run (rounds.mesh_reduction)

Workloads: 'reference' is AV-digits-shaped (image 784-256-256 and audio
400-256-256 encoders, 10 classes, C = 64, 5 steps per phase, B = 32, SGD,
FedMChain with rho = 0.1); 'tiny' is the same with hidden width 32 and
C = 1024. Flags override either. --agreement_dtype, --agreement_row_groups
and --agreement_materialize set the config's `rounds.agreement_*` fields
(how SSCA computes its sign agreement; speed only, the same bits) and are
echoed in the JSON, as is --nolayout_independent_bits
(`rounds.layout_independent_bits = False`: every program compiled with
XLA's defaults instead of `determinism.compiler_options()`) and
--regularizer and --reg_lambda (`fedmchain.regularizer`, boost by default,
and its weight; the local FLOP count follows both: a weight of 0 drops the
regularizer's forward passes).
"""

import functools
import json
import os
import platform
import resource
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

import fedmchain_jax as fmc
from fedmchain_jax import data as fdata
from experiments import cli
from experiments import config_checks
from experiments import host
from experiments import registry
from experiments import train as runner
from experiments.configs import default

WORKLOADS = {
    'reference': dict(hidden=(256, 256), cohort_size=64),
    'tiny': dict(hidden=(32,), cohort_size=1024),
}
INPUTS = {'image': (28, 28), 'audio': (20, 20)}
NUM_CLASSES = 10

_WORKLOAD = flags.DEFINE_enum('workload', 'reference', list(WORKLOADS),
                              'Preset the other flags override.')
_ALGORITHM = flags.DEFINE_list(
    'algorithm', ['fedmchain'], 'config.algorithm; a list runs each in turn.')
_HIDDEN = flags.DEFINE_list('hidden', None, 'Encoder widths, e.g. 256,256.')
_COHORT = flags.DEFINE_list(
    'cohort_size', None, 'C; a list (64,256,...) runs each in turn, in one '
    'process.')
_STEPS = flags.DEFINE_integer('steps_per_phase', 5,
                              'S_p; joint training takes M * S_p steps.',
                              lower_bound=1)
_BATCH = flags.DEFINE_integer('batch_size', 32, 'B.', lower_bound=1)
_CHUNK = flags.DEFINE_integer(
    'chunk_size', 0, 'Cohort chunk (0: none; -1: the launcher\'s automatic '
    'choice, `train.chunk_size_of`).', lower_bound=-1)
_RHO = flags.DEFINE_float('rho', 0.1, 'fedmchain.rho')
_AGREEMENT_DTYPE = flags.DEFINE_enum(
    'agreement_dtype', 'auto', list(fmc.ssca.AGREEMENT_DTYPES),
    'rounds.agreement_dtype: how SSCA computes its sign agreement.')
_AGREEMENT_ROW_GROUPS = flags.DEFINE_integer(
    'agreement_row_groups', 0,
    'rounds.agreement_row_groups (0: automatic).', lower_bound=0)
_AGREEMENT_MATERIALIZE = flags.DEFINE_bool(
    'agreement_materialize', False, 'rounds.agreement_materialize.')
_LAYOUT_INDEPENDENT = flags.DEFINE_bool(
    'layout_independent_bits', True,
    'rounds.layout_independent_bits: compile with '
    '`determinism.compiler_options()` (the default) or XLA\'s defaults.')
_REGULARIZER = flags.DEFINE_enum(
    'regularizer', 'boost', list(fmc.client.REGULARIZERS),
    'fedmchain.regularizer: the chain\'s error-compensated regularizer.')
_REG_LAMBDA = flags.DEFINE_float(
    'reg_lambda', 1.0, 'fedmchain.reg_lambda: the regularizer\'s weight (0: '
    'off; fedmchain_noreg always 0).')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed repetitions.',
                                lower_bound=1)
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Untimed repetitions first.',
                               lower_bound=0)
_LOOP = flags.DEFINE_bool('loop_baseline', True,
                          'Also time the per-client Python loop.')
_LOOP_REPEATS = flags.DEFINE_integer('loop_repeats', 2,
                                     'Timed repetitions of the loop.',
                                     lower_bound=1)
_BREAKDOWN = flags.DEFINE_bool(
    'breakdown', True, 'Also time sampling, local training and aggregation '
    'alone (three more compilations).')
_ROUNDS_PER_CALL = flags.DEFINE_integer(
    'rounds_per_call', 1, 'rounds.rounds_per_call: rounds per jitted call '
    '(a lax.scan of rounds when > 1); round figures are per round.',
    lower_bound=1)
_DTYPE = flags.DEFINE_enum(
    'dtype', 'float32', ['float32', 'bfloat16'], 'model.dtype: the compute '
    'type of local training (the peak and products rates are measured in '
    'it too).')
_JSON = flags.DEFINE_bool('json', False,
                          'Print one JSON object per line and run.')
_MESH_REDUCTION = flags.DEFINE_enum(
    'mesh_reduction', 'replicated', list(fmc.placement.MESH_REDUCTIONS),
    'rounds.mesh_reduction (with --cpu_devices or several devices).')
_CPU_DEVICES = flags.DEFINE_integer(
    'cpu_devices', 0, 'Split the CPU into this many devices and shard the '
    'cohort over them (0: as JAX starts).', lower_bound=0)


# The config fields these flags set, to name the flag in an error.
FLAG_OF_FIELD = {
    'model.hidden': 'hidden',
    'rounds.cohort_size': 'cohort_size',
    'client.steps_per_phase': 'steps_per_phase',
    'client.num_local_steps': 'steps_per_phase',
    'client.batch_size': 'batch_size',
    'rounds.chunk_size': 'chunk_size',
    'fedmchain.rho': 'rho',
    'fedmchain.reg_lambda': 'reg_lambda',
}


def check_settings(workload, algorithms, hidden, cohort_sizes,
                   steps_per_phase, batch_size, chunk_size, rho,
                   reg_lambda=1.0):
  """The configs the runs will use, validated before any of them starts.

  `hidden` and `cohort_sizes` are the flags' strings (empty: the preset).
  Returns (hidden widths or None, cohort sizes or [None]); raises
  `app.UsageError` naming the flag and what it allows.
  """
  unknown = sorted(set(algorithms) - set(registry.ALGORITHMS))
  if unknown:
    raise app.UsageError(f'--algorithm {",".join(unknown)} is unknown: '
                         f'allowed are {", ".join(registry.ALGORITHMS)}')
  sizes = cohort_sizes or [None]
  if not all(c is None or (c.isdigit() and int(c) > 0) for c in sizes):
    raise app.UsageError(f'--cohort_size={",".join(cohort_sizes)} must be '
                         'positive integers, e.g. 64,256')
  sizes = [c and int(c) for c in sizes]
  if hidden and not all(w.isdigit() and int(w) > 0 for w in hidden):
    raise app.UsageError(f'--hidden={",".join(hidden)} must be positive '
                         'integers (encoder widths), e.g. 256,256')
  widths = [int(w) for w in hidden] if hidden else None
  preset = WORKLOADS[workload]
  for algorithm in algorithms:
    for size in sizes:
      config = make_config(workload, algorithm,
                           tuple(widths or preset['hidden']),
                           size or preset['cohort_size'], steps_per_phase,
                           batch_size, chunk_size, rho,
                           reg_lambda=reg_lambda)
      try:
        config_checks.validate(config)
      except config_checks.ConfigError as error:
        flag = FLAG_OF_FIELD.get(error.field)
        if flag is None:
          raise app.UsageError(str(error)) from None
        raise app.UsageError(f'--{flag}={error.value!r} is invalid: '
                             f'{error.allowed}') from None
  return widths, sizes


def cpu_seconds() -> float:
  """User + system CPU time of this process so far, all its threads."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def timed(fn, repeats, warmup):
  """(median seconds of fn(), minor page faults per timed call, median CPU
  seconds of the process per call: time the host steals from a shared
  machine's cores does not count there, so it compares runs on a busy
  host better than the wall time)."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times, cpu = [], []
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(repeats):
    tic, cpu_tic = time.perf_counter(), cpu_seconds()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - tic)
    cpu.append(cpu_seconds() - cpu_tic)
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
  return statistics.median(times), faults / repeats, statistics.median(cpu)


def median_seconds(fn, repeats, warmup):
  return timed(fn, repeats, warmup)[0]


def chained(step, state):
  """fn() for `median_seconds` running state = step(state) on a copy of
  `state` (step may donate its argument)."""
  box = [jax.tree.map(jnp.copy, state)]

  def run():
    box[0] = step(box[0])
    return box[0]
  return run


def peak_flops(size=None, repeats=5, dtype='float32'):
  """FLOP/s of a size^3 matrix product of `dtype` on the default device.

  size defaults to 2048 on CPU and 8192 on accelerators (where a 2048^3
  product takes well under a millisecond and timing it measures dispatch).
  The product runs at JAX's default precision, as local training does.
  """
  if size is None:
    size = 2048 if jax.default_backend() == 'cpu' else 8192
  a = jax.random.normal(jax.random.key(0, impl='rbg'), (size, size), dtype)
  b = jax.random.normal(jax.random.key(1, impl='rbg'), (size, size), dtype)
  product = jax.jit(jnp.dot)
  return 2 * size**3 / median_seconds(lambda: product(a, b), repeats, 1)


def weight_entries(params, keys):
  """Multiply-accumulate weights (kernels) in the given top-level blocks."""
  return sum(x.size for k in keys if k in params
             for x in jax.tree.leaves(params[k]) if x.ndim >= 2)


def data_layer_entries(params, modality):
  """Kernel entries of the layer that reads `modality`'s input features.

  That is the encoder's first Dense layer, or the head where the encoder
  has no layers. Its input is data, so backpropagation computes no input
  gradient there: training it costs 4 W per example, not 6 W.
  """
  return sum(k * n for k, n, input_gradient in
             product_shapes(params, [modality]) if not input_gradient)


def local_flops(params, algorithm: str, modalities, steps_per_phase: int,
                batch_size: int, cohort_size: int,
                regularizer: str = 'boost', reg_lambda: float = 1.0) -> float:
  """The matrix-product FLOPs one round's local training executes.

  Per example-step, a trained kernel of W entries costs 2 W forward, 2 W for
  its weight gradient and 2 W for its input gradient; the layer that reads
  the data has no input gradient (4 W), and a frozen block run forward only
  costs 2 W. (The common "6 W" rule counts that input gradient too, and
  overstates the reference model's work by about 30%.) A chain's phase also
  runs its regularizer's frozen modalities forward: the earlier ones for
  'boost', all the others for 'reweight', none when its weight `reg_lambda`
  is 0 (`fedmchain_noreg`: the chain then skips that pass).
  """
  blocks = {m: [fmc.models.encoder_name(m), fmc.models.head_name(m)]
            for m in modalities}

  def trained(m):
    return (6 * weight_entries(params, blocks[m]) -
            2 * data_layer_entries(params, m))

  steps = len(modalities) * steps_per_phase
  if registry.ALGORITHMS[algorithm].local_training == 'joint':
    total = steps * sum(trained(m) for m in modalities)
  else:
    # A chain: phase j trains modality j. The boost regularizer's earlier
    # modalities are about half of the others on average over the
    # rotations; counted exactly for the first order.
    total = 0
    for j, m in enumerate(modalities):
      if reg_lambda == 0:
        frozen = []
      elif regularizer == 'boost':
        frozen = modalities[:j]
      else:
        frozen = [n for n in modalities if n != m]
      forward = [k for n in frozen for k in blocks[n]]
      total += steps_per_phase * (trained(m) +
                                  2 * weight_entries(params, forward))
  return float(total * batch_size * cohort_size)


def product_shapes(params, modalities):
  """[(K, N, input_gradient)] of every kernel local training multiplies by:
  each modality's encoder layers in order, then its head; the layer that
  reads the data (the first) has no input gradient.
  """
  shapes = []
  for m in modalities:
    encoder = params.get(fmc.models.encoder_name(m), {})
    layers = [encoder[name]['kernel'] for name in
              sorted(encoder, key=lambda name: int(name.split('_')[-1]))]
    head = params.get(fmc.models.head_name(m))
    if head is not None:
      layers.append(head['kernel'])
    shapes += [(k.shape[0], k.shape[1], i > 0) for i, k in enumerate(layers)]
  return shapes


def products_flops(params, modalities, width: int, batch_size: int,
                   options=None, repeats=5, dtype='float32'):
  """(FLOP/s, FLOPs per call) of one training step's matrix products alone,
  as vmapped local training runs them: for `width` clients at once (a
  chunk), every kernel [K, N]'s forward [B, K] x [K, N], weight gradient
  and (past the data layer) input gradient, each client with its own
  operands; compiled with `options`, the median of `repeats` calls.

  It is the rate this device reaches on the workload's own small products,
  the ceiling of local training's (`local_flops` counts the same products
  per example-step for joint training).
  """
  shapes = product_shapes(params, modalities)
  rng = np.random.default_rng(2)  # A jax.random draw compiles per shape.

  def normal(*shape):
    return jnp.asarray(rng.standard_normal((width,) + shape, np.float32),
                       dtype)

  operands = [(normal(batch_size, k), normal(k, n), normal(batch_size, n))
              for k, n, _ in shapes]
  flops = sum(2 * width * batch_size * k * n * (3 if input_gradient else 2)
              for k, n, input_gradient in shapes)
  run = jax.jit(functools.partial(step_products, shapes=shapes),
                compiler_options=options)
  return flops / median_seconds(lambda: run(operands), repeats, 1), flops


def step_products(operands, shapes):
  """The products of `products_flops` for operands [(x [n, B, K], w [n, K,
  N], dy [n, B, N])], one per entry of `shapes` (`product_shapes`)."""
  out = []
  for (x, w, dy), (_, _, input_gradient) in zip(operands, shapes):
    out.append(jnp.einsum('cbk,ckn->cbn', x, w))
    out.append(jnp.einsum('cbk,cbn->ckn', x, dy))
    if input_gradient:
      out.append(jnp.einsum('cbn,ckn->cbk', dy, w))
  return out


def random_population(num_clients, examples, seed=0):
  """Gaussian features and uniform labels, made on the default device (a
  C = 4096 population is 6 GB: NumPy would take tens of seconds) by one
  program of the 'rbg' generator (threefry's compiles several times slower,
  and an eager draw compiles once per shape)."""
  @jax.jit
  def draw(key):
    keys = jax.random.split(key, len(INPUTS) + 1)
    features = {m: jax.random.normal(k, (num_clients, examples) + shape)
                for k, (m, shape) in zip(keys, sorted(INPUTS.items()))}
    return features, jax.random.randint(keys[-1], (num_clients, examples), 0,
                                        NUM_CLASSES, jnp.int32)

  features, labels = draw(jax.random.key(seed, impl='rbg'))
  return fdata.FederatedData(
      features=features,
      labels=labels,
      example_mask=np.ones((num_clients, examples), bool),
      modality_mask={m: np.ones(num_clients, bool) for m in INPUTS},
      weights=np.full(num_clients, float(examples), np.float32))


def make_config(workload, algorithm, hidden, cohort_size, steps_per_phase,
                batch_size, chunk_size, rho, agreement_dtype='auto',
                agreement_row_groups=0, agreement_materialize=False,
                mesh_reduction='replicated', layout_independent_bits=True,
                regularizer='boost', reg_lambda=1.0, dtype='float32'):
  config = default.get_config()
  config.model.dtype = dtype
  config.rounds.mesh_reduction = mesh_reduction
  config.algorithm = algorithm
  config.model.hidden = tuple(hidden)
  config.data.num_clients = cohort_size
  config.rounds.cohort_size = cohort_size
  config.rounds.chunk_size = chunk_size
  config.client.steps_per_phase = steps_per_phase
  config.client.num_local_steps = len(INPUTS) * steps_per_phase
  config.client.batch_size = batch_size
  config.fedmchain.rho = rho
  config.rounds.agreement_dtype = agreement_dtype
  config.rounds.agreement_row_groups = agreement_row_groups
  config.rounds.agreement_materialize = agreement_materialize
  config.rounds.layout_independent_bits = layout_independent_bits
  config.fedmchain.regularizer = regularizer
  config.fedmchain.reg_lambda = reg_lambda
  del workload
  return config


def _breakdown(algorithm_fns, state, data, key, sample_only, flops, peak,
               products, devices, round_s, repeats, warmup, options) -> dict:
  """The round's two halves as it runs them: local training (with the
  upload's first steps where the round takes them per chunk) and the
  upload, aggregation and server step from what it hands over."""
  sample_fn = jax.jit(sample_only, compiler_options=options)
  cohort = sample_fn(state, data, key)
  train_fn = jax.jit(algorithm_fns.train_cohort, compiler_options=options)
  local_s, _, local_cpu_s = timed(lambda: train_fn(state, cohort, key),
                                  repeats, warmup)
  trained, client_metrics = train_fn(state, cohort, key)
  aggregate_fn = jax.jit(algorithm_fns.aggregate, donate_argnums=0,
                         compiler_options=options)
  aggregate_s, _, aggregate_cpu_s = timed(
      chained(lambda s: aggregate_fn(s, cohort, trained, client_metrics,
                                     key)[0], state), repeats, warmup)
  sample_s = median_seconds(lambda: sample_fn(state, data, key), repeats,
                            warmup)
  return {
      'sample_ms': 1e3 * sample_s,
      'local_ms': 1e3 * local_s,
      'local_tflops': flops / local_s / 1e12,
      'local_share_of_peak': flops / local_s / peak,
      'local_share_of_products': flops / local_s / (products * devices),
      'aggregate_ms': 1e3 * aggregate_s,
      'aggregate_share': aggregate_s / round_s,
      'local_cpu_ms': 1e3 * local_cpu_s,
      'aggregate_cpu_ms': 1e3 * aggregate_cpu_s,
  }


def _loop_round_seconds(loop_fns, state, population, key, cohort_size,
                        num_steps, batch_size, loop_repeats, options) -> float:
  """Median seconds of the same round as a Python loop over clients, each
  one's update jitted on one device: what a simulator without vmap runs.
  Each client's batches are gathered inside its jitted update, as the
  vmapped round gathers them inside local training."""
  single = jax.devices()[0]

  def update_one(params, data, client_id, examples, example_mask, present,
                 train_key, round_index):
    batches = fdata.DrawnBatches(data, client_id, examples, example_mask,
                                 present)
    return loop_fns.local_update(
        params, batches, present, jax.random.fold_in(train_key, client_id),
        round_index)

  one_client = jax.jit(update_one, compiler_options=options)
  state_1, data_1 = jax.device_put((state, population), single)
  loop_draw = jax.jit(lambda state, data, key: fdata.draw_cohort(
      fmc.algorithms.base.round_keys(key, state.round)[0], data,
      cohort_size, num_steps, batch_size), compiler_options=options)
  loop_aggregate = jax.jit(loop_fns.aggregate, compiler_options=options)
  train_key = fmc.algorithms.base.round_keys(key, state_1.round)[1]

  def loop_round():
    draw = loop_draw(state_1, data_1, key)
    ids, examples, example_mask, present = jax.device_get(
        (draw.client_ids, draw.examples, draw.example_mask,
         draw.modality_mask))
    trained = []
    for c in range(cohort_size):
      trained.append(one_client(
          state_1.params, data_1, ids[c], examples[c], example_mask[c],
          {m: v[c] for m, v in present.items()}, train_key, state_1.round))
    stacked, metrics = jax.tree.map(lambda *xs: jnp.stack(xs), *trained)
    deltas = jax.tree.map(lambda new, old: new - old, stacked,
                          state_1.params)
    return loop_aggregate(state_1, draw, deltas, metrics, key)

  return median_seconds(loop_round, loop_repeats, 1)


def _settings(config, workload, algorithm, hidden, steps_per_phase,
              num_steps, rho, rounds_per_call, mesh, params) -> dict:
  """What a benchmark row measured: the workload, its settings, the
  software and the machine."""
  return {
      'workload': workload, 'algorithm': algorithm, 'hidden': list(hidden),
      'cohort_size': config.rounds.cohort_size,
      'steps_per_phase': steps_per_phase, 'local_steps': num_steps,
      'batch_size': config.client.batch_size,
      'chunk_size': config.rounds.chunk_size, 'rho': rho,
      'rounds_per_call': rounds_per_call, 'dtype': config.model.dtype,
      'chunk_clients': runner.chunk_size_of(config, mesh, params) or 0,
      'agreement_dtype': config.rounds.agreement_dtype,
      'agreement_row_groups': config.rounds.agreement_row_groups,
      'agreement_materialize': config.rounds.agreement_materialize,
      'layout_independent_bits': config.rounds.layout_independent_bits,
      'regularizer': config.fedmchain.regularizer,
      'reg_lambda': registry.fedmchain_setting(config, 'reg_lambda'),
      'parameters': int(sum(x.size for x in jax.tree.leaves(params))),
      'device': jax.devices()[0].device_kind,
      'backend': jax.default_backend(), 'jax': jax.__version__,
      'devices': 1 if mesh is None else mesh.size,
      'mesh_reduction': (None if mesh is None else
                         config.rounds.mesh_reduction),
      'machine': platform.machine(), 'python': platform.python_version(),
      'cpu_model': host.cpu_model(), 'cpu_count': os.cpu_count(),
      'commit': host.commit(),
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES', ''),
  }


def _setup(config):
  """(modalities, apply_fn, mesh, params, algorithm, population, its data
  and initial state placed as the launcher places them) of a benchmark
  config: a random population of exactly the cohort."""
  cohort_size, batch_size = config.rounds.cohort_size, config.client.batch_size
  modalities = tuple(sorted(INPUTS))
  model = runner.build_model(config, modalities, NUM_CLASSES)
  apply_fn = runner.apply_fn_of(model)
  mesh = runner.make_mesh(config)
  sample = {m: jnp.zeros((1,) + s) for m, s in INPUTS.items()}
  params = model.init(jax.random.key(0), sample)['params']
  algorithm_fns = runner.build_algorithm(config, apply_fn, modalities,
                                         cohort_size, mesh, params=params)
  population = random_population(
      cohort_size, algorithm_fns.num_local_steps * batch_size)
  replicated = (jax.devices()[0] if mesh is None else
                jax.sharding.NamedSharding(mesh,
                                           jax.sharding.PartitionSpec()))
  return (modalities, apply_fn, mesh, params, algorithm_fns, population,
          jax.device_put(population, replicated),
          jax.device_put(algorithm_fns.init(params), replicated))


def _memory_mb(compiled) -> float | None:
  """Arguments, outputs and temporaries of a compiled program, MiB."""
  memory = compiled.memory_analysis()
  if memory is None:
    return None
  return (memory.argument_size_in_bytes + memory.output_size_in_bytes +
          memory.temp_size_in_bytes) / 2**20


def run_benchmark(workload='reference', algorithm='fedmchain', hidden=None,
                  cohort_size=None, steps_per_phase=5, batch_size=32,
                  chunk_size=0, rho=0.1, repeats=5, warmup=1,
                  loop_baseline=True, loop_repeats=2, breakdown=True,
                  agreement_dtype='auto', agreement_row_groups=0,
                  agreement_materialize=False,
                  mesh_reduction='replicated',
                  layout_independent_bits=True, regularizer='boost',
                  reg_lambda=1.0, rounds_per_call=1,
                  dtype='float32') -> dict:
  preset = WORKLOADS[workload]
  hidden = tuple(hidden or preset['hidden'])
  cohort_size = cohort_size or preset['cohort_size']
  config = make_config(workload, algorithm, hidden, cohort_size,
                       steps_per_phase, batch_size, chunk_size, rho,
                       agreement_dtype, agreement_row_groups,
                       agreement_materialize, mesh_reduction,
                       layout_independent_bits, regularizer, reg_lambda,
                       dtype)
  (modalities, apply_fn, mesh, params, algorithm_fns, population, data,
   state) = _setup(config)
  num_steps = algorithm_fns.num_local_steps
  key = jax.random.key(1)

  tic = time.perf_counter()
  options = fmc.determinism.compiler_options(
      layout_independent=layout_independent_bits)
  # As the launcher runs it: the server state is donated, so the error-
  # feedback table is updated in place, and each round starts from the last.
  # With rounds_per_call = K > 1, one call runs K rounds in a lax.scan
  # (`fmc.algorithms.scan_rounds`, the launcher's rounds.rounds_per_call);
  # the per-round figures are the call's divided by K.
  run = (algorithm_fns.run_round if rounds_per_call == 1 else
         fmc.algorithms.scan_rounds(algorithm_fns.run_round, rounds_per_call))
  round_fn = jax.jit(run, donate_argnums=0,
                     compiler_options=options).lower(state, data,
                                                     key).compile()
  compile_s = time.perf_counter() - tic
  call_s, call_faults, call_cpu_s = timed(
      chained(lambda s: round_fn(s, data, key)[0], state), repeats, warmup)
  round_s, round_faults, round_cpu_s = (
      call_s / rounds_per_call, call_faults / rounds_per_call,
      call_cpu_s / rounds_per_call)

  def sample_only(state, data, key):
    sample_key, _ = fmc.algorithms.base.round_keys(key, state.round)
    return fdata.sample_cohort(sample_key, data, cohort_size, num_steps,
                               batch_size)

  flops = local_flops(params, algorithm, modalities, steps_per_phase,
                      batch_size, cohort_size, regularizer,
                      registry.fedmchain_setting(config, 'reg_lambda'))
  peak = peak_flops(dtype=dtype)
  # Clients a device trains at once: a chunk (at least 2, as
  # `placement.map_clients` runs it) or the cohort, shared out over the devices.
  devices = 1 if mesh is None else mesh.size
  width = runner.chunk_size_of(config, mesh, params) or cohort_size
  products, _ = products_flops(params, modalities,
                               max(-(-width // devices), 2), batch_size,
                               options, dtype=dtype)
  examples = cohort_size * num_steps * batch_size
  result = {
      **_settings(config, workload, algorithm, hidden, steps_per_phase,
                  num_steps, rho, rounds_per_call, mesh, params),
      'compile_s': compile_s,
      'round_ms': 1e3 * round_s,
      'round_cpu_ms': 1e3 * round_cpu_s,
      'rounds_per_s': 1 / round_s,
      'client_updates_per_s': cohort_size / round_s,
      'examples_per_s': examples / round_s,
      'round_tflops': flops / round_s / 1e12,
      'peak_tflops': peak / 1e12,
      'products_tflops': products / 1e12,
      'memory_mb': _memory_mb(round_fn),
      'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      'page_faults_per_round': round_faults,
  }
  if breakdown:
    result.update(_breakdown(algorithm_fns, state, data, key, sample_only,
                             flops, peak, products, devices, round_s,
                             repeats, warmup, options))
  stats = getattr(jax.devices()[0], 'memory_stats', lambda: None)()
  if stats and 'peak_bytes_in_use' in stats:
    result['device_peak_mb'] = stats['peak_bytes_in_use'] / 2**20
  if loop_baseline:
    loop_fns = algorithm_fns if mesh is None else runner.build_algorithm(
        config, apply_fn, modalities, cohort_size)
    loop_s = _loop_round_seconds(loop_fns, state, population, key,
                                 cohort_size, num_steps, batch_size,
                                 loop_repeats, options)
    result['loop_round_ms'] = 1e3 * loop_s
    result['vmap_speedup'] = loop_s / round_s
  return result


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    jax.config.update('jax_num_cpu_devices', _CPU_DEVICES.value)
  hidden, sizes = check_settings(
      _WORKLOAD.value, _ALGORITHM.value, _HIDDEN.value, _COHORT.value,
      _STEPS.value, _BATCH.value, _CHUNK.value, _RHO.value,
      _REG_LAMBDA.value)
  failed = 0
  for algorithm in _ALGORITHM.value:
    for cohort_size in sizes:
      try:
        result = run_benchmark(
            _WORKLOAD.value, algorithm, hidden, cohort_size, _STEPS.value,
            _BATCH.value, _CHUNK.value, _RHO.value, _REPEATS.value,
            _WARMUP.value, _LOOP.value, _LOOP_REPEATS.value, _BREAKDOWN.value,
            _AGREEMENT_DTYPE.value, _AGREEMENT_ROW_GROUPS.value,
            _AGREEMENT_MATERIALIZE.value, _MESH_REDUCTION.value,
            _LAYOUT_INDEPENDENT.value, _REGULARIZER.value, _REG_LAMBDA.value,
            _ROUNDS_PER_CALL.value, _DTYPE.value)
      except Exception as error:  # pylint: disable=broad-except
        # Out of memory at one size should not lose the others.
        failed += 1
        result = {'algorithm': algorithm, 'cohort_size': cohort_size,
                  'error': f'{type(error).__name__}: {error}'[:500]}
      if _JSON.value:
        print(json.dumps(result, sort_keys=True), flush=True)
        continue
      for name, value in result.items():
        text = f'{value:.4g}' if isinstance(value, float) else str(value)
        print(f'{name:>22}: {text}')
      print(flush=True)
  if failed:
    raise SystemExit(f'{failed} benchmark run(s) failed; see "error" above.')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.flags_parser())
