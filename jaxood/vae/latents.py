"""Posterior families and priors of the VAE latent: diagonal Gaussian and vMF.

Each family turns the encoder's raw head ``(B, head_size)`` into posterior
parameters and provides sampling, ``log q(z|x)``, ``log p(z)`` and the analytic
``KL(q ‖ p)``, all in nats and batched over the leading axis.

References: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014
(Gaussian); Davidson et al., "Hyperspherical Variational Auto-Encoders", UAI 2018
(vMF posterior, uniform prior on S^{m−1}).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood import parallel
from jaxood.typing import Array, PRNGKey
from jaxood.vae import vmf

LOG_2PI = math.log(2.0 * math.pi)


class Posterior(NamedTuple):
    """Location ``(B, d)`` and spread: log σ ``(B, d)`` (Gaussian) or κ ``(B,)``."""

    loc: Array
    spread: Array


@dataclasses.dataclass(frozen=True)
class GaussianLatent:
    """q(z|x) = N(μ, diag σ²), p(z) = N(0, I) on R^d."""

    dim: int

    @property
    def head_size(self) -> int:
        return 2 * self.dim

    def posterior(self, head: Array) -> Posterior:
        mu, log_sigma = jnp.split(head, 2, axis=-1)
        return Posterior(mu, log_sigma)

    def sample(self, key: PRNGKey, post: Posterior) -> Array:
        eps = jax.random.normal(key, post.loc.shape, post.loc.dtype)
        return post.loc + jnp.exp(post.spread) * eps

    def log_q(self, post: Posterior, z: Array) -> Array:
        eps = (z - post.loc) * jnp.exp(-post.spread)
        return -0.5 * jnp.sum(eps**2 + LOG_2PI + 2.0 * post.spread, axis=-1)

    def log_prior(self, z: Array) -> Array:
        return -0.5 * jnp.sum(z**2 + LOG_2PI, axis=-1)

    def kl(self, post: Posterior) -> Array:
        var = jnp.exp(2.0 * post.spread)
        return 0.5 * jnp.sum(var + post.loc**2 - 1.0 - 2.0 * post.spread, axis=-1)

    def mode(self, post: Posterior) -> Array:
        return post.loc


@dataclasses.dataclass(frozen=True)
class VMFLatent:
    """q(z|x) = vMF(μ, κ) on S^{dim−1} ⊂ R^dim, p(z) uniform on the sphere.

    κ = softplus(raw) + 1 keeps the posterior away from the flat limit, as in
    Davidson et al.'s implementation.
    """

    dim: int

    def __post_init__(self):
        if self.dim < 2:
            raise ValueError(f"A spherical latent needs dim ≥ 2, got {self.dim}.")

    @property
    def head_size(self) -> int:
        return self.dim + 1

    def posterior(self, head: Array) -> Posterior:
        direction = head[..., : self.dim]
        norm = jnp.linalg.norm(direction, axis=-1, keepdims=True)
        mu = direction / jnp.maximum(norm, 1e-12)
        return Posterior(mu, jax.nn.softplus(head[..., self.dim]) + 1.0)

    def sample(self, key: PRNGKey, post: Posterior) -> Array:
        keys = jax.random.split(key, post.loc.shape[0])
        # Each device its own examples: a batched while loop (the rejection
        # sampler) cannot carry a batch axis split over explicit mesh axes.
        return parallel.per_shard(
            lambda b: jax.vmap(vmf.sample)(*b), (keys, post.loc, post.spread)
        )

    def log_q(self, post: Posterior, z: Array) -> Array:
        return vmf.log_prob(z, post.loc, post.spread)

    def log_prior(self, z: Array) -> Array:
        return jnp.full(z.shape[:-1], -vmf.log_sphere_area(self.dim), z.dtype)

    def kl(self, post: Posterior) -> Array:
        return vmf.kl_to_uniform(post.spread, self.dim)

    def mode(self, post: Posterior) -> Array:
        return post.loc


LATENTS = {"gaussian": GaussianLatent, "vmf": VMFLatent}
