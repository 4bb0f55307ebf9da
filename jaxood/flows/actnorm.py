"""ActNorm: per-channel affine map with data-dependent initialisation.

The data-dependent init is an explicit pure function whose result is an ordinary
parameter: restoring a checkpoint can never re-initialise it (a known failure of
several PyTorch Glow ports).

References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1
Convolutions", NeurIPS 2018, section 3.1.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxood.flows.bijector import Bijector
from jaxood.nets import actnorm_statistics
from jaxood.typing import Array, Params, PRNGKey


def _per_example(log_det_per_pixel: Array, x: Array) -> Array:
    """Broadcasts a log-det shared by every example to shape (B,)."""
    return jnp.broadcast_to(log_det_per_pixel * x.shape[1] * x.shape[2], x.shape[:1])


@dataclasses.dataclass(frozen=True)
class ActNorm(Bijector):
    """``y = exp(s) * (x + b)`` per channel; log-det ``H * W * sum(s)``."""

    def init(self, key: PRNGKey, shape: tuple[int, ...]) -> Params:
        del key
        channels = shape[-1]
        return {"bias": jnp.zeros((channels,)), "logscale": jnp.zeros((channels,))}

    def data_init(self, params: Params, x: Array) -> Params:
        """Returns params giving zero mean, unit variance per channel on ``x``."""
        del params
        bias, logscale = actnorm_statistics(x)
        return {"bias": bias, "logscale": logscale}

    def forward_and_log_det(self, params: Params, x: Array) -> tuple[Array, Array]:
        bias = params["bias"].reshape(1, 1, 1, -1)
        logscale = params["logscale"].reshape(1, 1, 1, -1)
        y = (x + bias) * jnp.exp(logscale)
        return y, _per_example(jnp.sum(params["logscale"]), x)

    def inverse_and_log_det(self, params: Params, y: Array) -> tuple[Array, Array]:
        bias = params["bias"].reshape(1, 1, 1, -1)
        logscale = params["logscale"].reshape(1, 1, 1, -1)
        x = y * jnp.exp(-logscale) - bias
        return x, _per_example(-jnp.sum(params["logscale"]), y)
