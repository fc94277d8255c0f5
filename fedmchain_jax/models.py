"""Multimodal late-fusion classifiers in Flax.

Every modality m has an encoder h_m = f_m(x_m) and a linear head
z_m = W_m h_m + b_m giving its unimodal logits. The fused prediction sums the
logits of the modalities that are present:

  z = sum_{m present} z_m,

which equals a linear classifier over the concatenated features [h_1; ...; h_M]
with the missing blocks dropped. The unimodal logits are what modality
competition is measured with (per-modality accuracy), and FedMChain trains the
blocks `encoder_<m>` / `head_<m>` of one modality at a time.
"""

from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fedmchain_jax.types import Array


def encoder_name(modality: str) -> str:
  return f'encoder_{modality}'


def head_name(modality: str) -> str:
  return f'head_{modality}'


class MLPEncoder(nn.Module):
  """Flattens its input and applies Dense + ReLU layers."""
  hidden: Sequence[int]

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.reshape(x.shape[:1] + (-1,)).astype(jnp.float32)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return x


class LateFusionClassifier(nn.Module):
  """Per-modality MLP encoders and heads, fused by summing logits.

  Attributes:
    modalities: modality names; parameters live under `encoder_<m>` and
      `head_<m>`.
    hidden: encoder layer widths, one tuple for every modality, or a mapping
      {modality: widths}.
    num_classes: K.
  """
  modalities: Sequence[str]
  hidden: Sequence[int] | Mapping[str, Sequence[int]]
  num_classes: int

  def _widths(self, modality: str) -> Sequence[int]:
    if isinstance(self.hidden, Mapping):
      return self.hidden[modality]
    return self.hidden

  @nn.compact
  def __call__(self, features: Mapping[str, Array],
               modality_mask: Mapping[str, Array] | None = None,
               only: Sequence[str] | None = None
               ) -> tuple[Array, dict[str, Array]]:
    """Returns fused logits [B, K] and unimodal logits {m: [B, K]}.

    Args:
      features: {modality: [B, ...]}.
      modality_mask: {modality: bool broadcastable to [B]}; a False entry
        drops that modality from the fused logits. Default: all present.
      only: compute just these modalities (the fused logits then sum only
        them; with none, the fused logits are 0). Default: all.
    """
    unimodal = {}
    fused = jnp.zeros((), jnp.float32)
    for m in (self.modalities if only is None else only):
      h = MLPEncoder(self._widths(m), name=encoder_name(m))(features[m])
      z = nn.Dense(self.num_classes, name=head_name(m))(h)
      unimodal[m] = z
      if modality_mask is None:
        fused = fused + z
      else:
        present = jnp.asarray(modality_mask[m])
        present = present.reshape(present.shape + (1,) * (z.ndim - present.ndim))
        fused = fused + jnp.where(present, z, 0.0)
    return fused, unimodal


def parameter_blocks(modalities: Sequence[str]
                     ) -> dict[str, tuple[tuple[str, ...], str | None]]:
  """The blocks FedMChain sparsifies and aggregates separately.

  Returns:
    {block name: (top-level parameter keys, modality or None)}: one block per
    modality encoder (`encoder_<m>`, held by the clients that have m) and one
    `classifier` block with every head (held by every client). Keys a model
    lacks (an encoder without layers has no parameters) are skipped.
  """
  blocks = {encoder_name(m): ((encoder_name(m),), m) for m in modalities}
  blocks['classifier'] = (tuple(head_name(m) for m in modalities), None)
  return blocks
