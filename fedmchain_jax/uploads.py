"""What clients send for a block: the upload stage of a round.

An upload is a factory's `Upload`, a NamedTuple of pure functions over the
cohort's rows [C, P_b] of one block (`blocks`):

  init(block_size) -> state           per-client state, [N, P_b], or None
  prepare(rows, sending, state, ids)  -> e_c: zero the rows of clients that
                                         send nothing, add what they carry
  encode(rows, holders, keys)         -> `Message`: what each client sends
  store(state, ids, rows, message)    -> state after the round (rows: e_c)

The round calls `prepare` where each chunk of local training ends, then
`encode` per block and `store`. Factories: `identity()` (the dense block,
FedAvg) and `top_fraction(rho, error_feedback=...)` (FedMChain's
sparse upload, docs/algorithm.md):

  e_c = delta_c + r_c,  x_c = e_c [ |e_c| >= t_c ],  r_c <- e_c - x_c

with t_c the magnitude of e_c's ceil(rho P_b)-th largest entry
(`compression.magnitude_threshold`).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from fedmchain_jax import blockwise
from fedmchain_jax import compression
from fedmchain_jax.types import Array


class Message(NamedTuple):
  """The cohort's upload of one block, kept as dense rows and thresholds.

  Client c sends the entries of rows[c] with |x| >= threshold[c] and x != 0
  (`values()`); threshold is +inf for a client that sends nothing and 0 for
  one that sends every non-zero entry. Aggregators that work block by block
  read `rows` and `threshold` (SSCA); others call `values()`.

  Attributes:
    rows: [C, P_b] e_c, finite.
    threshold: [C].
    kept: [C] int32, the entries each client sends (for the byte count).
  """
  rows: Array
  threshold: Array
  kept: Array

  def values(self) -> Array:
    """[C, P_b]: the sent entries, zeros elsewhere."""
    return jnp.where(compression.keep_mask(self.rows,
                                           self.threshold[:, None]),
                     self.rows, 0.0)


class Upload(NamedTuple):
  """The upload stage (see the module docstring).

  Attributes:
    init: `init(block_size) -> state` ([N, P_b] array) or None.
    prepare: `prepare(rows, sending, state, ids) -> rows`.
    encode: `encode(rows, holders, keys) -> Message`; keys [C].
    store: `store(state, ids, rows, message) -> state`; rows are the
      e_c that `message` encodes.
  """
  init: Callable
  prepare: Callable
  encode: Callable
  store: Callable


def zero_silent(rows: Array, sending: Array) -> Array:
  """Rows of clients that send nothing (weight 0: padding, dropped or
  non-finite clients) zeroed."""
  return jnp.where(sending[:, None], rows, 0.0)


def _every_entry(holders: Array) -> Array:
  """The threshold that sends every non-zero entry of a holder's row."""
  return jnp.where(holders, 0.0, jnp.inf).astype(jnp.float32)


def _nonzero_kept(rows: Array, holders: Array) -> Array:
  """[C] int32: the non-zero entries of each holder's row (0 elsewhere),
  what a client sending every non-zero entry sends."""
  return jnp.where(holders, blockwise.count_true(rows != 0),
                   0).astype(jnp.int32)


def identity() -> Upload:
  """Every client that holds the block sends all of it (FedAvg). `kept`
  counts its non-zero entries, so the byte count is what a client would
  send: P_b values, or fewer values with their positions or a bitmap where
  its update is sparse (a modality it lacks leaves its encoder's entries
  zero), the same accounting as every other upload."""

  def encode(rows, holders, keys):
    del keys
    return Message(rows, _every_entry(holders), _nonzero_kept(rows, holders))

  return Upload(init=lambda block_size: None,
                prepare=lambda rows, sending, state, ids: zero_silent(
                    rows, sending),
                encode=encode,
                store=lambda state, ids, rows, message: state)


def store_residuals(table: Array, ids: Array, message: Message) -> Array:
  """table.at[ids].set(rows - values), the entries not sent, `mode='drop'`.

  On CPU one row at a time in place, visiting only ids inside the table
  (padding ids are dropped as the scatter drops them), so the [C, P_b]
  residuals are never written out first (benchmarks/RESULTS.md).
  """
  rows, threshold = message.rows, message.threshold
  if jax.default_backend() != 'cpu':
    return table.at[ids].set(
        jnp.where(compression.keep_mask(rows, threshold[:, None]), 0.0, rows),
        mode='drop')
  inside = (ids >= 0) & (ids < table.shape[0])
  order = jnp.argsort(~inside, stable=True)  # Inside rows first, in order.

  def store(i, table):
    c = order[i]
    residual = jnp.where(compression.keep_mask(rows[c], threshold[c]), 0.0,
                         rows[c])
    return jax.lax.dynamic_update_index_in_dim(table, residual, ids[c], 0)

  return jax.lax.fori_loop(0, inside.sum(), store, table)


def top_fraction(rho=0.1, error_feedback: bool = False,
                 num_clients: int | None = None,
                 **threshold_options) -> Upload:
  """Each holder sends the top `rho` of its block's entries by magnitude.

  Args:
    rho: the share in (0, 1], a Python number or a traced scalar (a sweep);
      a Python rho >= 1 sends every non-zero entry.
    error_feedback: keep per-client residuals r_c of what was not sent (a
      [N, P_b] table per block in `ServerState.client_states`) and add them
      to the next round's delta.
    num_clients: N, the rows of the residual table (with error feedback).
    **threshold_options: of `compression.magnitude_threshold`.

  Returns:
    An `Upload`; `kept` counts each client's sent entries.
  """
  if error_feedback and num_clients is None:
    raise ValueError('error_feedback needs num_clients')
  dense = isinstance(rho, (int, float)) and rho >= 1.0

  def init(block_size):
    if not error_feedback:
      return None
    return jnp.zeros((num_clients, block_size), jnp.float32)

  def prepare(rows, sending, state, ids):
    rows = zero_silent(rows, sending)
    return rows if state is None else rows + state[ids]

  def encode(rows, holders, keys):
    if dense:
      return Message(rows, _every_entry(holders),
                     _nonzero_kept(rows, holders))
    threshold = jax.vmap(lambda x, k: compression.magnitude_threshold(
        x, rho, k, **threshold_options))(rows, keys)
    threshold = jnp.where(holders, threshold, jnp.inf)
    kept = jax.vmap(lambda x, t: compression.count_at_least(
        x, t, nonzero=True))(rows, threshold)
    return Message(rows, threshold, kept)

  def store(state, ids, rows, message):
    del rows  # The message keeps them: r_c = e_c - x_c is its unsent part.
    return state if state is None else store_residuals(state, ids, message)

  return Upload(init, prepare, encode, store)
