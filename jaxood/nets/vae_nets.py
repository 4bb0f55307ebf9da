"""Encoders and decoders of the VAEs: the conv nets for 28×28 and 32×32 inputs and MLPs.

Layouts follow the Vacant Holes supplement (§D; summarised in docs/vae.md):

- 28×28 encoder: Conv3×3 → 32, Conv3×3 → 16 (valid), MaxPool 2, Linear → head
  (26 → 24 → 12, 12·12·16 = 2304 features). Decoder: Linear → 2304, nearest
  upsampling ×2, ConvT3×3 → 32, ConvT3×3 → out (12 → 24 → 26 → 28). The printed
  "2306" and the stray decoder max-pool row are printing errors and are not copied.
- 32×32 encoder (padding 1, no conv bias): Conv → 16, Conv s2 → 32, Conv → 32,
  Conv s2 → 16, Linear → 512, Linear → head. Decoder: Linear → 512, Linear → 1024
  (8×8×16), ConvT s2 → 32, ConvT → 32, ConvT s2 → 16, ConvT → out.
- MLP: hidden widths given (256 → 128 for the S-VAE, 512 → 256 for the Lipschitz
  MLP), decoder mirrored.

``lipschitz=M`` turns every encoder layer into its ℓ∞-norm-constrained version with
``M^(1/L)`` per layer and GroupSort activations, making the encoder M-Lipschitz in
ℓ∞; only the encoder is constrained. ReLU everywhere otherwise. The encoder returns
the ``head_size`` raw numbers the latent distribution parses (μ and log σ, or the vMF
mean direction and concentration).

References: Glazunov & Zarras, "Vacant Holes for Unsupervised Detection of the
Outliers in Compact Latent Representation", UAI 2023; Kingma & Welling,
"Auto-Encoding Variational Bayes", ICLR 2014.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxood.nets.lipschitz import LipschitzConv, LipschitzDense, group_sort
from jaxood.typing import Array

PAD1 = ((1, 1), (1, 1))


def _max_pool(x: Array) -> Array:
    return nnx.max_pool(x, (2, 2), strides=(2, 2))


def _activation(lipschitz: float | None, x: Array) -> Array:
    return jax.nn.relu(x) if lipschitz is None else group_sort(x)


class _LayerFactory:
    """Builds plain or Lipschitz layers with one per-layer constant (init only)."""

    def __init__(self, lipschitz: float | None, num_layers: int, rngs: nnx.Rngs):
        self.lipschitz = lipschitz
        self.scale = None if lipschitz is None else lipschitz ** (1.0 / num_layers)
        self.rngs = rngs

    def dense(self, n_in: int, n_out: int):
        if self.lipschitz is None:
            return nnx.Linear(n_in, n_out, rngs=self.rngs)
        return LipschitzDense(n_in, n_out, self.scale, rngs=self.rngs)

    def conv(self, n_in, n_out, *, strides=1, padding="VALID", use_bias=True):
        if self.lipschitz is None:
            return nnx.Conv(
                n_in, n_out, (3, 3), strides=strides, padding=padding,
                use_bias=use_bias, rngs=self.rngs,
            )  # fmt: skip
        # The bias does not change the Lipschitz constant; keep it for simplicity.
        return LipschitzConv(
            n_in, n_out, 3, self.scale, strides=strides, padding=padding,
            rngs=self.rngs,
        )  # fmt: skip


class ConvEncoder(nnx.Module):
    """``(B, H, W, C) -> (B, head_size)`` for 28×28 or 32×32 inputs."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        head_size: int,
        *,
        lipschitz: float | None = None,
        rngs: nnx.Rngs,
    ):
        size, _, channels = image_shape
        if size not in (28, 32) or image_shape[1] != size:
            raise ValueError(
                f"The conv VAE supports 28×28 and 32×32 images, got {image_shape}; "
                "use architecture='mlp' for other sizes."
            )
        self.size = size
        if size == 28:
            layers = _LayerFactory(lipschitz, 3, rngs)
            self.convs = nnx.List([layers.conv(channels, 32), layers.conv(32, 16)])
            self.dense = nnx.List([layers.dense(12 * 12 * 16, head_size)])
        else:
            layers = _LayerFactory(lipschitz, 6, rngs)
            conv = functools.partial(layers.conv, padding=PAD1, use_bias=False)
            self.convs = nnx.List(
                [
                    conv(channels, 16),
                    conv(16, 32, strides=2),
                    conv(32, 32),
                    conv(32, 16, strides=2),
                ]
            )
            self.dense = nnx.List(
                [layers.dense(8 * 8 * 16, 512), layers.dense(512, head_size)]
            )
        self.lipschitz = lipschitz

    def __call__(self, x: Array) -> Array:
        h = x
        for conv in self.convs:
            h = _activation(self.lipschitz, conv(h))
        if self.size == 28:
            h = _max_pool(h)
        h = h.reshape(h.shape[0], -1)
        for dense in self.dense[:-1]:
            h = _activation(self.lipschitz, dense(h))
        return self.dense[-1](h)


class ConvDecoder(nnx.Module):
    """``(B, latent) -> (B, H, W, out_channels)`` for 28×28 or 32×32 outputs."""

    def __init__(self, image_size: int, latent_size: int, out_channels: int, *, rngs):
        self.size = image_size
        transpose = functools.partial(nnx.ConvTranspose, kernel_size=(3, 3), rngs=rngs)
        if image_size == 28:
            self.dense = nnx.List([nnx.Linear(latent_size, 12 * 12 * 16, rngs=rngs)])
            self.convs = nnx.List(
                [
                    transpose(16, 32, padding="VALID"),
                    transpose(32, out_channels, padding="VALID"),
                ]
            )
        elif image_size == 32:
            self.dense = nnx.List(
                [
                    nnx.Linear(latent_size, 512, rngs=rngs),
                    nnx.Linear(512, 8 * 8 * 16, rngs=rngs),
                ]
            )
            # "SAME" with stride 2 doubles the size, as padding 1 + output_padding 1.
            same = functools.partial(transpose, padding="SAME", use_bias=False)
            self.convs = nnx.List(
                [
                    same(16, 32, strides=(2, 2)),
                    same(32, 32),
                    same(32, 16, strides=(2, 2)),
                    same(16, out_channels),
                ]
            )
        else:
            raise ValueError(
                f"The conv decoder supports 28 or 32 px, got {image_size}."
            )

    def __call__(self, z: Array) -> Array:
        h = z
        for dense in self.dense:
            h = jax.nn.relu(dense(h))
        if self.size == 28:
            h = h.reshape(-1, 12, 12, 16)
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest ×2
        else:
            h = h.reshape(-1, 8, 8, 16)
        for conv in self.convs[:-1]:
            h = jax.nn.relu(conv(h))
        return self.convs[-1](h)


class MLPEncoder(nnx.Module):
    """``(B, H, W, C) -> (B, head_size)`` through dense layers of the given widths."""

    def __init__(
        self,
        num_inputs: int,
        hidden: tuple[int, ...],
        head_size: int,
        *,
        lipschitz: float | None = None,
        rngs: nnx.Rngs,
    ):
        widths = (num_inputs, *hidden, head_size)
        layers = _LayerFactory(lipschitz, len(widths) - 1, rngs)
        self.dense = nnx.List(
            [layers.dense(a, b) for a, b in itertools.pairwise(widths)]
        )
        self.lipschitz = lipschitz

    def __call__(self, x: Array) -> Array:
        h = x.reshape(x.shape[0], -1)
        for dense in self.dense[:-1]:
            h = _activation(self.lipschitz, dense(h))
        return self.dense[-1](h)


class MLPDecoder(nnx.Module):
    """``(B, latent) -> (B, H, W, out_channels)``."""

    def __init__(
        self,
        latent_size: int,
        hidden: tuple[int, ...],
        image_shape: tuple[int, int, int],
        out_channels: int,
        *,
        rngs: nnx.Rngs,
    ):
        h, w, _ = image_shape
        self.out_shape = (h, w, out_channels)
        widths = (latent_size, *hidden, h * w * out_channels)
        self.dense = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)]
        )

    def __call__(self, z: Array) -> Array:
        h = z
        for dense in self.dense[:-1]:
            h = jax.nn.relu(dense(h))
        return self.dense[-1](h).reshape(-1, *self.out_shape)
