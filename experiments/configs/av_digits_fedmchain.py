r"""FedMChain on AV-digits: the av_digits_fedavg setting with the chained
phases, top-10% uploads, SSCA and the server's Adam step on the SSCA
aggregate (`fedmchain_adam`, server lr 0.003: the study's choice on
AV-digits validation, docs/RESULTS.md), with equal local work (2 x 5 vs 10
steps).

Command:
  python -m experiments.main \
      --config=experiments/configs/av_digits_fedmchain.py \
      --workdir=/tmp/av_digits_fedmchain

Expected result (2-core CPU, about 40 s with the dataset built): after 100
rounds fused test accuracy about 0.997, audio head about 0.94, image head
about 0.95, with 221 MiB uploaded against FedAvg's 1,290 MiB
(docs/datasets.md). The literal reconstruction's plain SGD server step
(`--config.algorithm=fedmchain --config.server.optimizer=sgd
--config.server.lr=1`) gives about 0.990, 0.89 and 0.93.
"""

from experiments.configs import av_digits_fedavg


def get_config():
  config = av_digits_fedavg.get_config()
  config.algorithm = 'fedmchain_adam'
  config.server.optimizer = 'adam'  # What fedmchain_adam steps with.
  config.server.lr = 0.003
  return config
