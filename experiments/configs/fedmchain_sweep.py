r"""A sweep of FedMChain's client learning rate over three seeds, as one
compiled program.

Command:
  python -m experiments.sweep --config=experiments/configs/fedmchain_sweep.py \
      --workdir=/tmp/fedmchain_sweep

Expected result (2-core CPU, about a minute): DIR/summary.md with 6 members
in 2 settings, both near 0.91 fused accuracy (0.908 +- 0.009 at
client.lr=0.02, 0.906 +- 0.008 at 0.05): the server's Adam step
(experiments/configs/fedmchain.py) is invariant to the scale of the
aggregate, so the client rate matters little here.
"""

from experiments.configs import fedmchain


def get_config():
  return fedmchain.get_config()


def sweep():
  return {'client.lr': [0.02, 0.05], 'seed': [0, 1, 2]}
