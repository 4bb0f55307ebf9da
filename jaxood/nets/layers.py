"""Small NNX layers of Glow's coupling networks: ActNorm and the zero-initialised conv.

References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1
Convolutions", NeurIPS 2018.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxood.typing import Array

MIN_STD = 1e-6


def actnorm_statistics(x: Array) -> tuple[Array, Array]:
    """Data-dependent ActNorm init: per-channel ``(bias, logscale)`` of a batch.

    ``bias = -mean_c``, ``logscale = -log max(std_c, 1e-6)``, statistics over every
    axis but the last, so that ``exp(logscale) * (x + bias)`` has zero mean and unit
    variance per channel on this batch.
    """
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    std = jnp.std(x, axis=axes)
    return -mean, -jnp.log(jnp.maximum(std, MIN_STD))


class ActNorm2d(nnx.Module):
    """Per-channel ``y = exp(logscale) * (x + bias)`` on NHWC tensors."""

    def __init__(self, channels: int):
        self.bias = nnx.Param(jnp.zeros((channels,)))
        self.logscale = nnx.Param(jnp.zeros((channels,)))

    def __call__(self, x: Array) -> Array:
        shape = (1,) * (x.ndim - 1) + (-1,)
        bias = self.bias[...].reshape(shape)
        return (x + bias) * jnp.exp(self.logscale[...].reshape(shape))

    def initialize_from(self, x: Array) -> None:
        """Sets bias and scale from a batch (once, before training; traceable)."""
        bias, logscale = actnorm_statistics(x)
        self.bias[...] = bias
        self.logscale[...] = logscale


class ZeroConv2d(nnx.Module):
    """3x3 conv with zero weights and bias, output times ``exp(3 * logs)``.

    Zero output at initialisation makes every coupling start as a fixed simple map;
    the factor 3 lets the per-channel output scale move quickly.
    """

    def __init__(self, in_channels: int, out_channels: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(
            in_channels,
            out_channels,
            (3, 3),
            padding="SAME",
            kernel_init=nnx.initializers.zeros_init(),
            bias_init=nnx.initializers.zeros_init(),
            rngs=rngs,
        )
        self.logs = nnx.Param(jnp.zeros((out_channels,)))

    def __call__(self, x: Array) -> Array:
        scale = jnp.exp(3.0 * self.logs[...]).reshape((1,) * (x.ndim - 1) + (-1,))
        return self.conv(x) * scale
