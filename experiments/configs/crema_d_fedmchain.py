r"""FedMChain on CREMA-D: the crema_d_fedavg setting with the chained phases
(audio, then video, rotating), top-10% uploads, SSCA and the server's
Adam step at lr 0.003 (`fedmchain_adam`, as chosen on AV-digits validation),
with the same local work (2 x 5 against 10 steps).

Command:
  python -m experiments.main \
      --config=experiments/configs/crema_d_fedmchain.py \
      --workdir=/tmp/crema_d_fedmchain

Raw files and expected band: as experiments/configs/crema_d_fedavg.py.
"""

from experiments.configs import crema_d_fedavg


def get_config():
  config = crema_d_fedavg.get_config()
  config.algorithm = 'fedmchain_adam'
  config.server.optimizer = 'adam'  # What fedmchain_adam steps with.
  config.server.lr = 0.003
  return config
