"""fedmchain_jax: a JAX/Flax simulator of multimodal federated learning.

A federated round (cohort gather, vmapped local training, aggregation, server
optax step, metrics) is one pure function; jit it once and call it per round.
"""

from fedmchain_jax import aggregation
from fedmchain_jax import aggregators
from fedmchain_jax import algorithms
from fedmchain_jax import blocks
from fedmchain_jax import blockwise
from fedmchain_jax import client
from fedmchain_jax import compression
from fedmchain_jax import data
from fedmchain_jax import determinism
from fedmchain_jax import evaluation
from fedmchain_jax import faults
from fedmchain_jax import losses
from fedmchain_jax import models
from fedmchain_jax import placement
from fedmchain_jax import ssca
from fedmchain_jax import uploads
from fedmchain_jax.types import FederatedAlgorithm
from fedmchain_jax.types import ServerState

__version__ = '0.1.0'
