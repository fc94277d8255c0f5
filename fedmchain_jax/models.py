"""Multimodal late-fusion classifiers in Flax.

Every modality m has an encoder h_m = f_m(x_m) and a linear head
z_m = W_m h_m + b_m giving its unimodal logits. The fused prediction sums the
logits of the modalities that are present:

  z = sum_{m present} z_m,

which equals a linear classifier over the concatenated features [h_1; ...; h_M]
with the missing blocks dropped. The unimodal logits are what modality
competition is measured with (per-modality accuracy), and FedMChain trains the
blocks `encoder_<m>` / `head_<m>` of one modality at a time.

Encoders: 'mlp' (flatten, Dense + ReLU layers), 'conv1d' (sensor windows
[T, C]) and 'conv2d' (spectrograms [T, F] or frame stacks [H, W, C]); the
conv encoders pool their last feature map to one vector, so the head sees the
last width whatever the input length.

Mixed precision: `dtype` is the compute type of every layer (bfloat16 matmuls
and convolutions, say); parameters stay float32, so gradients, optimizer
state, uploads and the server's aggregation are float32, and the logits are
cast back to float32 before any loss or metric.
"""

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from fedmchain_jax.types import Array

# The compute types `LateFusionClassifier.dtype` accepts, by config name.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def encoder_name(modality: str) -> str:
  return f'encoder_{modality}'


def head_name(modality: str) -> str:
  return f'head_{modality}'


class MLPEncoder(nn.Module):
  """Flattens its input and applies Dense + ReLU layers."""
  hidden: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.reshape(x.shape[:1] + (-1,)).astype(self.dtype)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width, dtype=self.dtype)(x))
    return x


class Conv1DEncoder(nn.Module):
  """Windows [B, T, C] (or [B, T]): per width, a length-5 convolution, ReLU
  and max-pooling by 2 over time; then the mean over time, [B, last width].
  """
  hidden: Sequence[int]
  dtype: Any = jnp.float32
  kernel_size: int = 5

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.astype(self.dtype)
    if x.ndim == 2:
      x = x[..., None]
    for width in self.hidden:
      x = nn.relu(nn.Conv(width, (self.kernel_size,), dtype=self.dtype)(x))
      x = nn.max_pool(x, (2,), strides=(2,), padding='SAME')
    return x.mean(axis=1)


class Conv2DEncoder(nn.Module):
  """Maps [B, H, W, C] (or [B, H, W], one channel): per width, a 3 x 3
  convolution, ReLU and max-pooling by 2; then the spatial mean,
  [B, last width].
  """
  hidden: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.astype(self.dtype)
    if x.ndim == 3:
      x = x[..., None]
    for width in self.hidden:
      x = nn.relu(nn.Conv(width, (3, 3), dtype=self.dtype)(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')
    return x.mean(axis=(1, 2))


ENCODERS = {'mlp': MLPEncoder, 'conv1d': Conv1DEncoder,
            'conv2d': Conv2DEncoder}


class LateFusionClassifier(nn.Module):
  """Per-modality encoders and heads, fused by summing logits.

  Attributes:
    modalities: modality names; parameters live under `encoder_<m>` and
      `head_<m>`.
    hidden: encoder layer widths (Dense widths, or conv channels), one tuple
      for every modality, or a mapping {modality: widths}.
    num_classes: K.
    encoder: a key of `ENCODERS` for every modality, or a mapping
      {modality: key}.
    dtype: the compute type (parameters are float32 whatever it is).
  """
  modalities: Sequence[str]
  hidden: Sequence[int] | Mapping[str, Sequence[int]]
  num_classes: int
  encoder: str | Mapping[str, str] = 'mlp'
  dtype: Any = jnp.float32

  def _widths(self, modality: str) -> Sequence[int]:
    if isinstance(self.hidden, Mapping):
      return self.hidden[modality]
    return self.hidden

  def _encoder(self, modality: str) -> nn.Module:
    kind = (self.encoder[modality] if isinstance(self.encoder, Mapping)
            else self.encoder)
    return ENCODERS[kind](self._widths(modality), dtype=self.dtype,
                          name=encoder_name(modality))

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
      h = self._encoder(m)(features[m])
      z = nn.Dense(self.num_classes, dtype=self.dtype,
                   name=head_name(m))(h).astype(jnp.float32)
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
