r"""FedAvg on UCI-HAR (accelerometer + gyroscope windows, 6 activities), one
client per training subject split five ways (21 x 5 = 105 clients), 1-D conv
encoders.

Command:
  python -m experiments.main --config=experiments/configs/uci_har_fedavg.py \
      --workdir=/tmp/uci_har_fedavg

Raw files: unpack the official archive (https://archive.ics.uci.edu/dataset/
240, CC BY 4.0) into --config.data.manual_dir (default
$FEDMCHAIN_RAW_DIR/uci_har, else ~/fedmchain_data/raw/uci_har), so that its
'UCI HAR Dataset/train/' exists; the dataset is built once into --config.data.data_dir. The test split is the
official one (9 subjects no client has). FedMultimodal's label-skewed
setting: --config.data.partition=dirichlet --config.data.num_clients=105
--config.data.dirichlet_alpha=5.0.

Expected result: the literature's band for this setting is macro-F1
(eval/f1) of about 0.77-0.85 for FedAvg and FedOpt (FedMultimodal, alpha
5.0, its own encoders); this config has not been run on the real files on
this project's machines (they are not there), so its own figure is to be
measured (docs/datasets.md).
"""

import os

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'uci_har'
  config.data.manual_dir = os.path.join(default.RAW_DIR, 'uci_har')
  config.data.partition = 'natural'
  config.data.clients_per_speaker = 5
  config.data.num_clients = 105
  config.model.encoder = 'conv1d'
  config.model.hidden = (32, 64)
  config.rounds.num_rounds = 200
  config.rounds.cohort_size = 10
  config.rounds.eval_every = 10
  config.client.batch_size = 32
  config.client.lr = 0.05
  config.eval.batch_size = 500
  return config
