r"""FedAvg on the embedded two-modality data (no download).

Command:
  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/fedmchain_default

Expected result (2-core CPU, under 10 s with start-up): after 100 rounds the
fused test accuracy is about 0.80, the 'strong' head alone about 0.81 and the
'weak' head alone about 0.50. The fused model is no better than the strong
modality, and the weak head stays below the 0.54 it reaches when trained on
its own (--config.data.synthetic.modalities="('weak',)" with the tuples cut to
one entry): joint training lets the strong modality suppress the weak one.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0
  # One of experiments.train.ALGORITHMS.
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
  # The embedded generator: one entry per modality in every tuple.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.modalities = ('strong', 'weak')
  config.data.synthetic.dims = (32, 32)
  config.data.synthetic.informativeness = (0.8, 0.7)
  config.data.synthetic.noise_scale = (0.5, 2.0)

  config.model = ml_collections.ConfigDict()
  config.model.hidden = (64,)

  config.rounds = ml_collections.ConfigDict()
  config.rounds.num_rounds = 100
  config.rounds.cohort_size = 10
  config.rounds.eval_every = 10
  config.rounds.checkpoint_every = 20

  config.client = ml_collections.ConfigDict()
  config.client.optimizer = 'sgd'
  config.client.lr = 0.05
  config.client.momentum = 0.0
  config.client.num_local_steps = 10
  config.client.batch_size = 16

  config.server = ml_collections.ConfigDict()
  config.server.optimizer = 'sgd'
  config.server.lr = 1.0
  config.server.momentum = 0.0

  # Used when algorithm == 'fedprox'.
  config.fedprox = ml_collections.ConfigDict()
  config.fedprox.mu = 0.01

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 500
  return config
