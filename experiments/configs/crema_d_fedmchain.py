r"""FedMChain on CREMA-D: the crema_d_fedavg setting with the chained phases
(audio, then video, rotating), top-10% uploads and SSCA, with the same local
work (2 x 5 against 10 steps).

Command:
  python -m experiments.main \
      --config=experiments/configs/crema_d_fedmchain.py \
      --workdir=/tmp/crema_d_fedmchain

Raw files and expected band: as experiments/configs/crema_d_fedavg.py.
"""

from experiments.configs import crema_d_fedavg


def get_config():
  config = crema_d_fedavg.get_config()
  config.algorithm = 'fedmchain'
  return config
