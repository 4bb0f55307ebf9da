"""Squeeze (space-to-depth) and its inverse, log-det 0.

NHWC layout: ``(B, H, W, C) -> (B, H/2, W/2, 4C)`` with new channel
``(2 * di + dj) * C + c`` for the pixel at offset (di, dj) of each 2x2 block. (The
PyTorch reference orders channels ``4c + 2di + dj``; it matters only for loading its
checkpoints.)

References: Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP",
ICLR 2017, section 3.6.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from jaxood.flows.bijector import Bijector
from jaxood.parallel import reshape_batch
from jaxood.typing import Array, Params, PRNGKey


def squeeze(x: Array) -> Array:
    """``(B, H, W, C) -> (B, H/2, W/2, 4C)``."""
    b, h, w, c = x.shape
    x = reshape_batch(x, (b, h // 2, 2, w // 2, 2, c)).transpose(0, 1, 3, 2, 4, 5)
    return reshape_batch(x, (b, h // 2, w // 2, 4 * c))


def unsqueeze(x: Array) -> Array:
    """Inverse of :func:`squeeze`: ``(B, H, W, 4C) -> (B, 2H, 2W, C)``."""
    b, h, w, c4 = x.shape
    x = reshape_batch(x, (b, h, w, 2, 2, c4 // 4)).transpose(0, 1, 3, 2, 4, 5)
    return reshape_batch(x, (b, 2 * h, 2 * w, c4 // 4))


@dataclasses.dataclass(frozen=True)
class Squeeze(Bijector):
    """The squeeze as a bijector (a permutation of the entries): event shape
    ``(H, W, C) -> (H/2, W/2, 4C)``, no params."""

    def init(self, key: PRNGKey, shape: tuple[int, ...]) -> Params:
        del key, shape
        return {}

    def forward_and_log_det(self, params: Params, x: Array) -> tuple[Array, Array]:
        del params
        return squeeze(x), jnp.zeros(x.shape[:1], x.dtype)

    def inverse_and_log_det(self, params: Params, y: Array) -> tuple[Array, Array]:
        del params
        return unsqueeze(y), jnp.zeros(y.shape[:1], y.dtype)
