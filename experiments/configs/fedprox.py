r"""FedProx on the embedded data: the default config with a proximal term.

Command:
  python -m experiments.main --config=experiments/configs/fedprox.py \
      --workdir=/tmp/fedmchain_fedprox

Expected result (2-core CPU, under 10 s with start-up): close to FedAvg on
this mildly skewed split (fused test accuracy about 0.80 after 100 rounds); lower
--config.data.dirichlet_alpha=0.1 to see the proximal term matter.
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.algorithm = 'fedprox'
  config.fedprox.mu = 0.01
  return config
