r"""A sweep of FedMChain's client learning rate over three seeds, as one
compiled program.

Command:
  python -m experiments.sweep --config=experiments/configs/fedmchain_sweep.py \
      --workdir=/tmp/fedmchain_sweep

Expected result (2-core CPU, about a minute): DIR/summary.md with 6 members
in 2 settings; client.lr=0.05 ends near 0.90 fused accuracy (the
experiments/configs/fedmchain.py run) and 0.02 a little lower.
"""

from experiments.configs import fedmchain


def get_config():
  return fedmchain.get_config()


def sweep():
  return {'client.lr': [0.02, 0.05], 'seed': [0, 1, 2]}
