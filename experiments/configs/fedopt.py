r"""FedOpt on the embedded data: FedAvg's clients, Adam at the server.

Command:
  python -m experiments.main --config=experiments/configs/fedopt.py \
      --workdir=/tmp/fedmchain_fedopt

Expected result (2-core CPU, under 10 s with start-up): after 100 rounds the
fused test accuracy is about 0.90 and the 'weak' head alone about 0.55,
against 0.88 and 0.48 for FedAvg (experiments/configs/default.py). The
server learning rate 0.01 is Reddi et al.'s usual order for Adam, not tuned
here; --config.algorithm=fedopt_yogi uses Yogi (about 0.90 fused at 0.01).
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.algorithm = 'fedopt_adam'
  config.server.lr = 0.01
  return config
