"""A small UNet noise-prediction network for diffusion models (NNX).

Layout (Ho et al.'s DDPM UNet, scaled down for 28x28 grey images on a CPU): a 3x3
input conv; per resolution level ``num_res_blocks`` residual blocks (GroupNorm,
SiLU, 3x3 conv, plus a projection of the time embedding), then a stride-2 conv
(except at the last level); a middle of two residual blocks around one
self-attention block; the mirror-image up path with skip connections and
nearest-neighbour upsampling; GroupNorm, SiLU and a zero-initialised 3x3 output
conv, so that the untrained network predicts ε̂ = 0. Time enters as a sinusoidal
embedding of 1000 t. No dropout: the network is a deterministic function of
``(params, x, t)``.

References: Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models",
NeurIPS 2020 (appendix B); Song et al., ICLR 2021 (the continuous-time version).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxood.typing import Array


def timestep_embedding(t: Array, dim: int, max_period: float = 10_000.0) -> Array:
    """Sinusoidal features ``(B, dim)`` of times ``t`` ``(B,)`` in [0, 1] (× 1000)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = 1000.0 * t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ResBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, temb: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.GroupNorm(cin, num_groups=_groups(cin), rngs=rngs)
        self.conv1 = nnx.Conv(cin, cout, (3, 3), padding="SAME", rngs=rngs)
        self.time = nnx.Linear(temb, cout, rngs=rngs)
        self.norm2 = nnx.GroupNorm(cout, num_groups=_groups(cout), rngs=rngs)
        # Zero init: every block starts as the identity (the DDPM choice).
        self.conv2 = nnx.Conv(
            cout,
            cout,
            (3, 3),
            padding="SAME",
            kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )
        self.skip = nnx.Conv(cin, cout, (1, 1), rngs=rngs) if cin != cout else None

    def __call__(self, x: Array, temb: Array) -> Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.time(jax.nn.silu(temb))[:, None, None, :]
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class AttentionBlock(nnx.Module):
    """Single-head self-attention over the pixels of one resolution, residual."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.norm = nnx.GroupNorm(channels, num_groups=_groups(channels), rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=1,
            in_features=channels,
            decode=False,
            out_kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )

    def __call__(self, x: Array) -> Array:
        b, h, w, c = x.shape
        tokens = self.norm(x).reshape(b, h * w, c)
        return x + self.attention(tokens).reshape(b, h, w, c)


class UNet(nnx.Module):
    """``(x (B, H, W, C), t (B,)) -> ε̂ (B, H, W, C)``.

    Args:
        channels: image channels C.
        base: channels of the first level.
        multipliers: channels of level i = base × multipliers[i]; H and W must be
            divisible by 2 ** (len(multipliers) − 1).
        num_res_blocks: residual blocks per level on the down path.
        attention: a self-attention block in the middle (lowest resolution).
    """

    def __init__(
        self,
        channels: int,
        base: int,
        multipliers: tuple[int, ...],
        num_res_blocks: int,
        attention: bool,
        *,
        rngs: nnx.Rngs,
    ):
        temb = 4 * base
        self.base = base
        self.time1 = nnx.Linear(base, temb, rngs=rngs)
        self.time2 = nnx.Linear(temb, temb, rngs=rngs)
        self.conv_in = nnx.Conv(channels, base, (3, 3), padding="SAME", rngs=rngs)
        widths = [base * m for m in multipliers]
        skips, cin = [base], base
        down = []
        for level, cout in enumerate(widths):
            for _ in range(num_res_blocks):
                down.append(ResBlock(cin, cout, temb, rngs=rngs))
                cin = cout
                skips.append(cin)
            if level < len(widths) - 1:
                down.append(
                    nnx.Conv(cin, cin, (3, 3), strides=2, padding="SAME", rngs=rngs)
                )
                skips.append(cin)
        self.down = nnx.List(down)
        self.mid1 = ResBlock(cin, cin, temb, rngs=rngs)
        self.mid_attention = AttentionBlock(cin, rngs=rngs) if attention else None
        self.mid2 = ResBlock(cin, cin, temb, rngs=rngs)
        up = []
        for level, cout in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                up.append(ResBlock(cin + skips.pop(), cout, temb, rngs=rngs))
                cin = cout
            if level > 0:
                up.append(nnx.Conv(cin, cin, (3, 3), padding="SAME", rngs=rngs))
        self.up = nnx.List(up)
        self.norm_out = nnx.GroupNorm(cin, num_groups=_groups(cin), rngs=rngs)
        self.conv_out = nnx.Conv(
            cin,
            channels,
            (3, 3),
            padding="SAME",
            kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )

    def __call__(self, x: Array, t: Array) -> Array:
        temb = timestep_embedding(t, self.base)
        temb = self.time2(jax.nn.silu(self.time1(temb)))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid1(h, temb)
        if self.mid_attention is not None:
            h = self.mid_attention(h)
        h = self.mid2(h, temb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(jnp.concatenate([h, skips.pop()], axis=-1), temb)
            else:  # upsample: nearest neighbour, then a 3x3 conv
                b, hh, ww, c = h.shape
                h = jax.image.resize(h, (b, 2 * hh, 2 * ww, c), "nearest")
                h = layer(h)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))
