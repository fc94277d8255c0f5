"""Federated algorithms, each a `FederatedAlgorithm` of pure functions."""

from fedmchain_jax.algorithms.fedavg import fedavg
