r"""FedAvg on CREMA-D (speech audio + face video, 6 emotions), one client per
training actor (73 clients), 2-D conv encoders over log-mel frames and
3 grey video frames.

Command:
  python -m experiments.main --config=experiments/configs/crema_d_fedavg.py \
      --workdir=/tmp/crema_d_fedavg

Raw files: the repository's AudioWAV/ and VideoFlash/ folders
(https://github.com/CheyneyComputerScience/CREMA-D, Open Database License;
the files are in git LFS) in --config.data.manual_dir (default
$FEDMCHAIN_RAW_DIR/crema_d, else ~/fedmchain_data/raw/crema_d). Without
VideoFlash/ the run is audio-only and the log says so. The dataset is built once (the videos are decoded
then) into --config.data.data_dir; the test split is 18 actors no client
has. Label skew instead of actors: --config.data.partition=dirichlet
--config.data.num_clients=73 --config.data.dirichlet_alpha=0.1.

Expected result: centralized audio-visual models with ResNet-18 encoders
reach about 0.5-0.7 accuracy on CREMA-D (OGM-GE, PMR report the audio
modality dominating the visual one); this small encoder on 3 frames is
expected below that, and this config has not been run on the real files on
this project's machines (they are not there): its figure is to be measured
(docs/datasets.md).
"""

import os

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'crema_d'
  config.data.manual_dir = os.path.join(default.RAW_DIR, 'crema_d')
  config.data.partition = 'natural'
  config.data.clients_per_speaker = 1
  config.data.num_clients = 73
  config.model.encoder = 'conv2d'
  config.model.hidden = (16, 32, 64)
  config.rounds.num_rounds = 200
  config.rounds.cohort_size = 10
  config.rounds.eval_every = 10
  config.client.batch_size = 16
  config.client.lr = 0.05
  config.eval.batch_size = 250
  return config
