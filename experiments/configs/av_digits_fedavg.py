r"""FedAvg on AV-digits (FSDD speech x MNIST images), one client per speaker
split five ways (30 clients), reference-sized encoders.

Command:
  python -m experiments.main --config=experiments/configs/av_digits_fedavg.py \
      --workdir=/tmp/av_digits_fedavg

Needs the `data` extra and the raw files: FSDD recordings and MNIST idx files
under --config.data.manual_dir (default $FEDMCHAIN_RAW_DIR, else
~/fedmchain_data/raw). The dataset is built once into --config.data.data_dir.

Expected result (2-core CPU, about 30 s with the dataset built): after 100
rounds fused test accuracy about 0.97, the image head alone about 0.78 and
the audio head alone about 0.50, far below the 0.90 audio reaches on its own
(docs/datasets.md): the image modality dominates.
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'av_digits'
  config.data.partition = 'natural'
  config.data.clients_per_speaker = 5
  config.model.hidden = (256, 256)
  config.rounds.num_rounds = 100
  config.rounds.cohort_size = 10
  config.rounds.eval_every = 10
  config.client.batch_size = 32
  config.client.lr = 0.05
  config.eval.batch_size = 300
  return config
