"""Federated algorithms, each a `FederatedAlgorithm` of pure functions."""

from fedmchain_jax.algorithms.base import scan_rounds
from fedmchain_jax.algorithms.rounds import compose
from fedmchain_jax.algorithms.fedavg import fedavg
from fedmchain_jax.algorithms.fedavg import fedavg_ogm_ge
from fedmchain_jax.algorithms.fedmchain import CHAIN_RULES
from fedmchain_jax.algorithms.fedmchain import chain_orders
from fedmchain_jax.algorithms.fedmchain import fedmchain
