"""Federated data: the padded population, cohort gathering and datasets."""

from fedmchain_jax.data.federated import Cohort
from fedmchain_jax.data.federated import CohortDraw
from fedmchain_jax.data.federated import DataError
from fedmchain_jax.data.federated import DrawnBatches
from fedmchain_jax.data.federated import validate
from fedmchain_jax.data.federated import cohort_batches
from fedmchain_jax.data.federated import client_batches
from fedmchain_jax.data.federated import dirichlet_partition
from fedmchain_jax.data.federated import draw_cohort
from fedmchain_jax.data.federated import draw_modality_mask
from fedmchain_jax.data.federated import FederatedData
from fedmchain_jax.data.federated import from_partition
from fedmchain_jax.data.federated import gather_batches
from fedmchain_jax.data.federated import gather_cohort
from fedmchain_jax.data.federated import sample_cohort
from fedmchain_jax.data.federated import TestData
from fedmchain_jax.data import synthetic
