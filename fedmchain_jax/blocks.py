"""Parameter blocks: the units a client uploads and the server aggregates.

A `Blocks` mapping is {name: (top-level parameter keys, modality or None)}
(see `models.parameter_blocks`). A block tied to modality m is held only by
clients that have m. Per client, a block travels as one flat vector [P_b]:
its leaves (in tree order) concatenated; over a cohort, rows [C, P_b].
`whole_model(params)` is the single block of FedAvg.
"""

import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp

Blocks = Mapping[str, tuple[Sequence[str], str | None]]


def whole_model(params) -> dict[str, tuple[tuple[str, ...], None]]:
  """One block, 'model', of every top-level key, held by every client."""
  return {'model': (tuple(params), None)}


def present(params, keys: Sequence[str]) -> tuple[str, ...]:
  """The keys the params have (an encoder without layers has none)."""
  return tuple(k for k in keys if k in params)


def layout(params, keys: Sequence[str]):
  """(treedef, shapes, sizes) of the sub-tree params[keys]."""
  leaves, treedef = jax.tree.flatten({k: params[k] for k in keys})
  return (treedef, [x.shape for x in leaves],
          [math.prod(x.shape) for x in leaves])


def size(params, keys: Sequence[str]) -> int:
  """P_b, the entries of the block params[keys]."""
  return sum(layout(params, keys)[2])


def flatten(tree, keys: Sequence[str], num_clients: int):
  """[C, P_b]: the block's leaves of a tree (leading axis C), concatenated."""
  leaves = jax.tree.leaves({k: tree[k] for k in keys})
  return jnp.concatenate([x.reshape(num_clients, -1) for x in leaves], axis=1)


def unflatten(vector, block_layout):
  """The sub-tree of a flattened block [..., P_b] (leading axes kept)."""
  treedef, shapes, sizes = block_layout
  pieces, start = [], 0
  for shape, length in zip(shapes, sizes):
    pieces.append(vector[..., start:start + length].reshape(
        vector.shape[:-1] + shape))
    start += length
  return jax.tree.unflatten(treedef, pieces)


def split(blocks: Blocks, params, deltas):
  """({block: [C, P_b]}, {key: leaf outside every block}) of a deltas tree.

  Local training hands its deltas over in this form, each block written
  once where its chunk's training ends, as the upload reads it.
  """
  rows = jax.tree.leaves(deltas)[0].shape[0]
  flats = {name: flatten(deltas, present(params, keys), rows)
           for name, (keys, _) in blocks.items() if present(params, keys)}
  outside = {k: v for k, v in deltas.items()
             if not any(k in keys for keys, _ in blocks.values())}
  return flats, outside


def join(split_deltas, blocks: Blocks, params):
  """The deltas tree (leading axis C) of `split`'s output."""
  flats, outside = split_deltas
  deltas = dict(outside)
  for name, flat in flats.items():
    deltas.update(unflatten(flat, layout(params,
                                         present(params, blocks[name][0]))))
  return deltas
