r"""FedAvg on the embedded two-modality data (no download).

Command:
  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/fedmchain_default

Expected result (2-core CPU, under 10 s with start-up): after 100 rounds the
fused test accuracy is about 0.88, the 'strong' head alone 0.82 and the
'weak' head alone 0.48, below the 0.54 it reaches when trained on its own
(--config.data.synthetic.modalities="('weak',)" with the tuples cut to one
entry): joint training lets the strong modality suppress the weak one.
--config.algorithm=fedmchain reaches about 0.91 fused and 0.60 weak while
uploading 2.8 MiB instead of 21 MiB.
"""

import os

import ml_collections

# Where the raw-file datasets lie (each config's `data.manual_dir`): the
# environment variable FEDMCHAIN_RAW_DIR, else ~/fedmchain_data/raw; or pass
# --config.data.manual_dir=DIR (docs/datasets.md).
RAW_DIR = os.path.expanduser(
    os.environ.get('FEDMCHAIN_RAW_DIR', '~/fedmchain_data/raw'))


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # fedavg | fedprox | fedavg_ogm | fedopt_adam | fedopt_yogi | fedmchain |
  # fedmchain_adam | fedmchain_noreg | fedmchain_mean | fedmchain_ties |
  # joint_ssca | joint_sparse_mean | fedavg_median | fedavg_trimmed_mean
  # (experiments/registry.py, docs/algorithm.md).
  config.algorithm = 'fedavg'

  config.data = ml_collections.ConfigDict()
  config.data.name = 'synthetic'
  config.data.num_clients = 100
  config.data.examples_per_client = 64
  config.data.num_test = 2000
  config.data.num_classes = 10
  config.data.dirichlet_alpha = 1.0
  config.data.missing_modality_rate = 0.0
  config.data.min_examples = 2
  # Share of each training client's examples held out as the validation
  # split (`fmc.data.federated.hold_out`); tuning evaluates on it.
  config.data.validation_fraction = 0.0
  # The embedded generator: one entry per modality in every tuple.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.modalities = ('strong', 'weak')
  config.data.synthetic.dims = (32, 32)
  config.data.synthetic.informativeness = (0.8, 0.7)
  config.data.synthetic.noise_scale = (0.5, 2.0)
  # AV-digits (data.name = 'av_digits'; fedmchain_jax/data/av_digits.py).
  config.data.manual_dir = RAW_DIR
  config.data.data_dir = os.path.expanduser('~/fedmchain_data/tfds')
  config.data.source = 'manual'  # manual | catalog (needs TensorFlow).
  # natural (by speaker, subject or actor) | dirichlet (num_clients).
  config.data.partition = 'natural'
  # Natural clients per speaker (av_digits), subject (uci_har) or actor
  # (crema_d): each one's examples split at random this many ways.
  config.data.clients_per_speaker = 5
  config.data.pairing_seed = 0
  config.data.audio_snr_db = ml_collections.config_dict.placeholder(float)
  config.data.image_energy_removed = 0.0

  config.model = ml_collections.ConfigDict()
  # Encoder layer widths (Dense widths for 'mlp', channels for the conv
  # encoders).
  config.model.hidden = (64,)
  # Every modality's encoder: mlp | conv1d (sensor windows [T, C]) | conv2d
  # (spectrograms [T, F], frame stacks [H, W, C]); fedmchain_jax/models.py.
  config.model.encoder = 'mlp'
  # Compute type of the model's layers: float32 | bfloat16.
  # Parameters, optimizer state, uploads and aggregation stay float32.
  config.model.dtype = 'float32'

  config.rounds = ml_collections.ConfigDict()
  config.rounds.num_rounds = 100
  config.rounds.cohort_size = 10
  config.rounds.eval_every = 10
  config.rounds.checkpoint_every = 20
  # Train the cohort in chunks of this many clients (0: all at once; -1:
  # automatic: on a single CPU device, where chunks are faster, as many
  # clients as fill about 8 MB of parameters (`train.auto_chunk_size`), else
  # all at once). Never changes a result bit.
  config.rounds.chunk_size = -1
  # Rounds per jitted call (`fmc.algorithms.scan_rounds`): K > 1 runs K
  # rounds in one `lax.scan`, bitwise the same as K calls, without the
  # per-round dispatch (for small models on accelerators). A call never
  # runs past an evaluation or checkpoint round.
  config.rounds.rounds_per_call = 1
  # With several devices, shard the cohort over a mesh axis 'clients'.
  config.rounds.shard_clients = True
  # How a sharded round sums over clients: 'replicated' (bitwise the same on
  # any number of devices) or 'sharded' (partial sums; less memory).
  config.rounds.mesh_reduction = 'replicated'
  # How SSCA computes its sign agreement (`ssca.sign_agreement`): operand
  # type 'auto' (bit counts on CPU, int8 products elsewhere), 'int8',
  # 'float32', 'bfloat16' or 'bits'; row groups (0: automatic; g >= 1: the
  # clients in g groups, only the group pairs i <= j computed); and whether
  # the operands are written out before the products instead of fused into
  # them. Speed only: never changes a result bit.
  config.rounds.agreement_dtype = 'auto'
  config.rounds.agreement_row_groups = 0
  config.rounds.agreement_materialize = False
  # Compile with `determinism.compiler_options()`, so that no bit of a run
  # depends on the chunk size or the device count. False keeps XLA's
  # defaults: on some CPUs 6-18% faster, the same to about 1e-7 across
  # layouts, and still bitwise repeatable for one layout.
  config.rounds.layout_independent_bits = True

  config.client = ml_collections.ConfigDict()
  config.client.optimizer = 'sgd'
  config.client.lr = 0.05
  config.client.momentum = 0.0
  # Joint training (fedavg, fedprox, fedavg_ogm) takes num_local_steps steps;
  # chained and joint_ssca clients take steps_per_phase per modality. With two
  # modalities the defaults give every algorithm the same local work.
  config.client.num_local_steps = 10
  config.client.steps_per_phase = 5
  config.client.batch_size = 16

  config.server = ml_collections.ConfigDict()
  config.server.optimizer = 'sgd'
  config.server.lr = 1.0
  config.server.momentum = 0.0

  # Used when algorithm == 'fedprox'.
  config.fedprox = ml_collections.ConfigDict()
  config.fedprox.mu = 0.01

  # FedMChain and its ablations.
  config.fedmchain = ml_collections.ConfigDict()
  config.fedmchain.chain_order = ()  # Modality names; () = sorted names.
  config.fedmchain.chain_rule = 'rotate'  # fixed | rotate (every round).
  config.fedmchain.regularizer = 'boost'  # boost | reweight.
  config.fedmchain.reg_lambda = 1.0  # 0 switches the regularizer off.
  config.fedmchain.reg_w1 = 1.0  # reweight form only.
  config.fedmchain.reg_w2 = 1.0  # reweight form only.
  config.fedmchain.rho = 0.1  # Share of each block's entries uploaded.
  config.fedmchain.error_feedback = True
  config.fedmchain.tau = 0.0  # SSCA link threshold on sign agreement.
  config.fedmchain.max_groups = 4
  config.fedmchain.combine = 'weighted'  # weighted | largest.
  # ssca | mean (the weighted mean of the same sparse uploads) | median |
  # trimmed_mean (experiments/registry.py: AGGREGATORS).
  config.fedmchain.aggregator = 'ssca'
  # A group's coordinate: the mean over all its members (chosen on
  # validation, docs/RESULTS.md) | over its agreeing senders (the literal
  # TIES mean; docs/algorithm.md, SSCA step 3).
  config.fedmchain.normalize = 'members'

  # OGM-GE (fedavg_ogm).
  config.ogm = ml_collections.ConfigDict()
  config.ogm.alpha = 0.5
  config.ogm.noise = True

  # Simulated faults and attackers (fedmchain_jax/faults.py).
  config.faults = ml_collections.ConfigDict()
  config.faults.dropout_rate = 0.0  # Cohort clients that never report.
  config.faults.nonfinite_rate = 0.0  # Reporting clients sending NaN.
  config.faults.attack = 'none'  # none | sign_flip | scale | noise.
  config.faults.attack_fraction = 0.0  # Share of clients that attack.
  config.faults.attack_scale = 10.0  # Factor of the 'scale' attack.

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 500
  # The split evaluated: 'test' or 'validation' (needs
  # data.validation_fraction > 0; the test split is then never read).
  config.eval.split = 'test'
  # Round metrics of what each block's aggregate is made of ('agg/*',
  # `fmc.aggregators.with_metrics`); off by default: they cost passes over
  # the cohort's updates. Change no result.
  config.eval.aggregation_metrics = False
  return config
