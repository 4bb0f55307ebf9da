"""The convolutional conditioner of Glow's coupling layers.

Conv3x3(in -> hidden, no bias) + ActNorm -> ReLU -> Conv1x1(hidden -> hidden, no bias)
+ ActNorm -> ReLU -> ZeroConv3x3(hidden -> out). Conv weights N(0, 0.05^2), "same"
padding, as in Schirrmeister et al.'s Glow.

References: Kingma & Dhariwal, NeurIPS 2018; Schirrmeister et al., "Understanding
Anomaly Detection with Deep Invertible Networks through Hierarchies of Distributions
and Features", NeurIPS 2020.
"""

from __future__ import annotations

import jax
from flax import nnx

from jaxood.nets.layers import ActNorm2d, ZeroConv2d
from jaxood.typing import Array

WEIGHT_STD = 0.05


class CouplingNet(nnx.Module):
    """NHWC ``(B, H, W, in_channels) -> (B, H, W, out_channels)``; zero at init."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, *, rngs):
        normal = nnx.initializers.normal(WEIGHT_STD)
        self.conv_in = nnx.Conv(
            in_channels, hidden, (3, 3), padding="SAME", use_bias=False,
            kernel_init=normal, rngs=rngs,
        )  # fmt: skip
        self.norm_in = ActNorm2d(hidden)
        self.conv_mid = nnx.Conv(
            hidden, hidden, (1, 1), use_bias=False, kernel_init=normal, rngs=rngs
        )
        self.norm_mid = ActNorm2d(hidden)
        self.conv_out = ZeroConv2d(hidden, out_channels, rngs=rngs)

    def __call__(self, x: Array) -> Array:
        h = jax.nn.relu(self.norm_in(self.conv_in(x)))
        h = jax.nn.relu(self.norm_mid(self.conv_mid(h)))
        return self.conv_out(h)

    def initialize_from(self, x: Array) -> None:
        """Data-dependent init of the inner ActNorms on a batch (traceable: it runs
        inside the jitted ``jaxood.flows.init``)."""
        h = self.conv_in(x)
        self.norm_in.initialize_from(h)
        h = self.conv_mid(jax.nn.relu(self.norm_in(h)))
        self.norm_mid.initialize_from(h)
