"""Invertible 1x1 convolution with an LU-parametrised weight.

``W = (L * M_lower + I) (U * M_upper + diag(exp(w_s)))``; log-det ``H * W * sum(w_s)``.

Kingma & Dhariwal write ``W = P L (U + diag(sign * exp(w_s)))`` with a fixed
permutation P and fixed signs. Here the random orthogonal initial weight is replaced
by ``P^T Q S`` (rows permuted by the pivots of Q's LU, columns multiplied by the signs
of U's diagonal): still a random orthogonal matrix, but one whose unpivoted LU has a
positive diagonal. So P = I and sign = +1, and every parameter is an ordinary float
that an optimizer may update; the determinant stays positive during training.

References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1
Convolutions", NeurIPS 2018, section 3.2.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxood.flows.bijector import Bijector
from jaxood.typing import Array, Params, PRNGKey


@dataclasses.dataclass(frozen=True)
class InvertibleConv1x1(Bijector):
    """Channel mixing ``y[..., i] = sum_j W[i, j] x[..., j]``."""

    def init(self, key: PRNGKey, shape: tuple[int, ...]) -> Params:
        channels = shape[-1]
        q, _ = jnp.linalg.qr(jax.random.normal(key, (channels, channels)))
        _, lower, upper = jax.scipy.linalg.lu(q)
        diagonal = jnp.diag(upper)
        upper = upper * jnp.sign(diagonal)[None, :]
        return {
            "lower": jnp.tril(lower, -1),
            "upper": jnp.triu(upper, 1),
            "log_diag": jnp.log(jnp.abs(diagonal)),
        }

    @staticmethod
    def weight(params: Params) -> Array:
        """The ``(C, C)`` weight matrix."""
        channels = params["log_diag"].shape[0]
        eye = jnp.eye(channels)
        lower = jnp.tril(params["lower"], -1) + eye
        upper = jnp.triu(params["upper"], 1) + jnp.diag(jnp.exp(params["log_diag"]))
        return lower @ upper

    def forward_and_log_det(self, params: Params, x: Array) -> tuple[Array, Array]:
        y = jnp.einsum("bhwj,ij->bhwi", x, self.weight(params))
        log_det = x.shape[1] * x.shape[2] * jnp.sum(params["log_diag"])
        return y, jnp.broadcast_to(log_det, x.shape[:1])

    def inverse_and_log_det(self, params: Params, y: Array) -> tuple[Array, Array]:
        x = jnp.einsum("bhwj,ij->bhwi", y, jnp.linalg.inv(self.weight(params)))
        log_det = -y.shape[1] * y.shape[2] * jnp.sum(params["log_diag"])
        return x, jnp.broadcast_to(log_det, y.shape[:1])
