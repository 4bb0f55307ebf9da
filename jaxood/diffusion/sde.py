"""The variance-preserving SDE: its noise schedule and Gaussian marginals.

    dx = -½ β(t) x dt + √β(t) dW,   β(t) = β_min + (β_max − β_min) t,   t ∈ [0, 1],

so x_t | x_0 ~ N(ψ(t) x_0, σ(t)² I) with B(t) = ∫₀ᵗ β = β_min t + ½ (β_max − β_min) t²,
ψ(t) = exp(−B(t)/2) and σ(t)² = 1 − exp(−B(t)). With the defaults (0.1, 20):
ψ(0.01) = 0.999003, σ(0.01) = 0.044643, ψ(1) = 0.0066: x_1 is N(0, I) to within
4e-5 in variance, the prior of the probability-flow ODE.

References: Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole, "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021
(section 3.4 and appendix B).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from jaxood.typing import Array, PRNGKey


@dataclasses.dataclass(frozen=True)
class VPSDE:
    """The VP-SDE of Song et al. (hashable: a ``jit`` static argument).

    Every method takes ``t`` as a float or an array and broadcasts.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __post_init__(self):
        if not 0.0 <= self.beta_min < self.beta_max:
            raise ValueError(
                "VPSDE needs 0 ≤ beta_min < beta_max, got "
                f"beta_min={self.beta_min}, beta_max={self.beta_max}."
            )

    def beta(self, t: Array) -> Array:
        """β(t), the noise rate."""
        return self.beta_min + (self.beta_max - self.beta_min) * jnp.asarray(t)

    def integral_beta(self, t: Array) -> Array:
        """B(t) = ∫₀ᵗ β(s) ds."""
        t = jnp.asarray(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t: Array) -> Array:
        """ψ(t) = exp(−B(t)/2), the scale of the data in x_t."""
        return jnp.exp(-0.5 * self.integral_beta(t))

    def sigma(self, t: Array) -> Array:
        """σ(t) = √(1 − exp(−B(t))), the standard deviation of the noise in x_t."""
        return jnp.sqrt(-jnp.expm1(-self.integral_beta(t)))

    def marginal_sample(self, key: PRNGKey, x0: Array, t: Array) -> tuple[Array, Array]:
        """``(x_t, ε)`` with x_t = ψ(t) x_0 + σ(t) ε, ε ~ N(0, I).

        ``t`` is a scalar or one time per example (shape ``(N,)`` for ``x0`` of
        shape ``(N, ...)``).
        """
        t = jnp.asarray(t, x0.dtype)
        t = t.reshape(t.shape + (1,) * (x0.ndim - t.ndim))
        noise = jax.random.normal(key, x0.shape, x0.dtype)
        return self.alpha(t) * x0 + self.sigma(t) * noise, noise

    def ode_drift(self, y: Array, score: Array, t: Array) -> Array:
        """The probability-flow ODE's velocity −½ β(t) (y + ∇ log p_t(y))."""
        return -0.5 * self.beta(t) * (y + score)

    @staticmethod
    def prior_log_prob(y: Array) -> Array:
        """log N(y; 0, I) in nats, summed over every axis of one example."""
        return -0.5 * (jnp.sum(y**2) + y.size * math.log(2.0 * math.pi))
