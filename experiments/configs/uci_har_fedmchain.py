r"""FedMChain on UCI-HAR: the uci_har_fedavg setting with the chained phases
(accelerometer, then gyroscope, rotating), top-10% uploads, SSCA and the
server's Adam step at lr 0.003 (`fedmchain_adam`, as chosen on AV-digits
validation), with the same local work (2 x 5 against 10 steps).

Command:
  python -m experiments.main \
      --config=experiments/configs/uci_har_fedmchain.py \
      --workdir=/tmp/uci_har_fedmchain

Raw files and expected band: as experiments/configs/uci_har_fedavg.py.
"""

from experiments.configs import uci_har_fedavg


def get_config():
  config = uci_har_fedavg.get_config()
  config.algorithm = 'fedmchain_adam'
  config.server.optimizer = 'adam'  # What fedmchain_adam steps with.
  config.server.lr = 0.003
  return config
