"""Per-scale priors of the multi-scale flow.

- ``"diagonal"`` (Schirrmeister et al.'s code): flatten the scale's latent z to v,
  ``u = exp(s) * (v + b)`` per dimension (s, b data-initialised), ``u ~ N(0, I)``;
  log-density ``sum_d [log N(u_d; 0, 1) + s_d]``. Not conditioned on other scales.
- ``"conditional"`` (Glow's split prior): ``z ~ N(mu(h), exp(logs(h))^2)`` with
  ``(mu, logs) = ZeroConv(h)`` of the part h that continues to the next scale;
  the last scale has a learned per-dimension mean and log-std.

Both return the standardised latent u (N(0, I) under the model), which is what
``encode`` hands out and ``decode``/``sample`` take.

References: Schirrmeister et al., NeurIPS 2020 (official code, models/glow.py);
Kingma & Dhariwal, NeurIPS 2018 (split prior, "learntop").
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
from flax import nnx

from jaxood.nets import ZeroConv2d, actnorm_statistics, pure
from jaxood.typing import Array, Params, PRNGKey

PRIORS = ("diagonal", "conditional")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def standard_normal_log_prob(u: Array) -> Array:
    """Sum over all non-batch axes of log N(u; 0, 1), shape (B,)."""
    return jnp.sum(-0.5 * u * u - _HALF_LOG_2PI, axis=tuple(range(1, u.ndim)))


@dataclasses.dataclass(frozen=True)
class ScalePrior:
    """The prior of one scale's latent ``z`` of shape ``latent_shape`` (H, W, C).

    ``context_shape`` is the shape of the continuing part ``h`` (None for the last
    scale); only the conditional prior uses it.
    """

    kind: str
    latent_shape: tuple[int, int, int]
    context_shape: tuple[int, int, int] | None

    @property
    def _conditional(self) -> bool:
        return self.kind == "conditional" and self.context_shape is not None

    def init(self, key: PRNGKey) -> Params:
        if self._conditional:
            net = ZeroConv2d(
                self.context_shape[-1], 2 * self.latent_shape[-1], rngs=nnx.Rngs(key)
            )
            return pure.params_of(net)
        zeros = jnp.zeros(self.latent_shape)
        return {"bias": zeros, "logscale": zeros}

    def data_init(self, params: Params, z: Array) -> Params:
        """Diagonal prior: per-dimension standardisation of ``z`` on a batch."""
        if self.kind != "diagonal":
            return params
        bias, logscale = actnorm_statistics(z.reshape(z.shape[0], -1))
        return {
            "bias": bias.reshape(self.latent_shape),
            "logscale": logscale.reshape(self.latent_shape),
        }

    def _mean_and_logscale(self, params: Params, context: Array | None):
        """Returns (shift, logscale) with u = (z + shift) * exp(logscale)."""
        if self._conditional:
            graph = pure.graphdef(
                ZeroConv2d, self.context_shape[-1], 2 * self.latent_shape[-1]
            )
            out = pure.apply(graph, params, context)
            mean, log_std = out[..., 0::2], out[..., 1::2]
            return -mean, -log_std
        return params["bias"][None], params["logscale"][None]

    def standardize(self, params: Params, z: Array, context: Array | None):
        """``z -> (u, log p(z))``: standardised latent and the prior log-density."""
        shift, logscale = self._mean_and_logscale(params, context)
        u = (z + shift) * jnp.exp(logscale)
        logscale = jnp.broadcast_to(logscale, z.shape)
        return u, standard_normal_log_prob(u) + jnp.sum(logscale, axis=(1, 2, 3))

    def unstandardize(self, params: Params, u: Array, context: Array | None) -> Array:
        """``u -> z``, the inverse of :meth:`standardize`."""
        shift, logscale = self._mean_and_logscale(params, context)
        return u * jnp.exp(-logscale) - shift
