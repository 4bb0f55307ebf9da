"""The von Mises–Fisher distribution on the unit sphere S^{m−1} ⊂ R^m.

Density ``q(z) = C_m(κ) exp(κ μᵀz)`` with
``log C_m(κ) = (m/2 − 1) log κ − (m/2) log 2π − log I_{m/2−1}(κ)``; Bessel functions
through the exponentially scaled ``log_bessel_ive`` of TensorFlow Probability's JAX
substrate (``log I_v(κ) = log_bessel_ive(v, κ) + κ``), stable for large κ.

Sampling follows Wood (1994) as used by Davidson et al. (2018): the component
``w = μᵀz`` comes from a rejection sampler (a ``lax.while_loop``, so it runs under
``jit`` and ``vmap``); a uniform tangent direction completes the sample around e₁,
and a Householder reflection maps e₁ to μ. Reparameterisation: the accepted
Beta variate ε is held fixed and ``w = h(ε, κ)`` is differentiated in κ (the
``g_rep`` term of Davidson et al.; the small score-function correction ``g_cor`` is
dropped, as in their public implementation).

References: Davidson, Falorsi, De Cao, Kipf & Tomczak, "Hyperspherical Variational
Auto-Encoders", UAI 2018; Wood, "Simulation of the von Mises Fisher distribution",
Communications in Statistics 1994.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxood.typing import Array, PRNGKey


def _log_bessel_ive(order, x: Array) -> Array:
    """``log(I_v(x) e^{−x})``; tfp is imported here so that ``jaxood.vae`` (and LID,
    which imports it) loads without tensorflow-probability until a vMF is used."""
    from tensorflow_probability.substrates import jax as tfp

    return tfp.math.log_bessel_ive(order, x)


def _log_bessel_i(order: float, x: Array) -> Array:
    return _log_bessel_ive(jnp.asarray(order, x.dtype), x) + x


def log_sphere_area(m: int) -> float:
    """``log |S^{m−1}| = log(2 π^{m/2} / Γ(m/2))``: minus the uniform log-density."""
    return math.log(2.0) + 0.5 * m * math.log(math.pi) - math.lgamma(0.5 * m)


def log_normalizer(kappa: Array, m: int) -> Array:
    """``log C_m(κ)``, the log normaliser of vMF(μ, κ) on S^{m−1}."""
    v = 0.5 * m - 1.0
    return (
        v * jnp.log(kappa) - 0.5 * m * math.log(2 * math.pi) - _log_bessel_i(v, kappa)
    )


def mean_resultant_length(kappa: Array, m: int) -> Array:
    """``A_m(κ) = E[μᵀz] = I_{m/2}(κ) / I_{m/2−1}(κ)``."""
    ratio = _log_bessel_ive(0.5 * m, kappa) - _log_bessel_ive(0.5 * m - 1.0, kappa)
    return jnp.exp(ratio)


def log_prob(z: Array, mu: Array, kappa: Array) -> Array:
    """``log q(z)`` in nats w.r.t. the surface measure; ``(..., m)`` → ``(...)``."""
    m = z.shape[-1]
    return log_normalizer(kappa, m) + kappa * jnp.sum(mu * z, axis=-1)


def kl_to_uniform(kappa: Array, m: int) -> Array:
    """``KL(vMF(μ, κ) ‖ U(S^{m−1})) = κ A_m(κ) + log C_m(κ) + log |S^{m−1}|``."""
    return (
        kappa * mean_resultant_length(kappa, m)
        + log_normalizer(kappa, m)
        + log_sphere_area(m)
    )


def _sample_w(key: PRNGKey, kappa: Array, m: int) -> Array:
    """Wood's rejection sampler for ``w = μᵀz`` (one scalar κ)."""
    dim = m - 1.0
    root = jnp.sqrt(4.0 * kappa**2 + dim**2)
    # b = (−2κ + root)/dim, written without the cancellation for large κ.
    b = dim / (2.0 * kappa + root)
    a = (dim + 2.0 * kappa + root) / 4.0
    d = 4.0 * a * b / (1.0 + b) - dim * jnp.log(dim)
    half = 0.5 * dim

    def w_of(eps):
        return (1.0 - (1.0 + b) * eps) / (1.0 - (1.0 - b) * eps)

    def body(state):
        key, _, _ = state
        key, beta_key, uniform_key = jax.random.split(key, 3)
        eps = jax.random.beta(beta_key, half, half, dtype=kappa.dtype)
        t = 2.0 * a * b / (1.0 - (1.0 - b) * eps)
        u = jax.random.uniform(uniform_key, dtype=kappa.dtype)
        accept = dim * jnp.log(t) - t + d >= jnp.log(u)
        return key, eps, accept

    init = (key, jnp.zeros((), kappa.dtype), jnp.zeros((), bool))
    _, eps, _ = jax.lax.while_loop(lambda s: ~s[2], body, init)
    # Reparameterised in κ through b with the accepted ε held fixed.
    return w_of(jax.lax.stop_gradient(eps))


def sample(key: PRNGKey, mu: Array, kappa: Array) -> Array:
    """One draw from vMF(μ, κ) for one ``(m,)`` unit mean and scalar κ > 0.

    Batch with ``jax.vmap``; differentiable in μ and κ (see the module docstring).
    """
    m = mu.shape[-1]
    if m < 2:
        raise ValueError(f"The vMF needs m ≥ 2 dimensions, got {m}.")
    w_key, v_key = jax.random.split(key)
    w = _sample_w(w_key, kappa, m)
    v = jax.random.normal(v_key, (m - 1,), mu.dtype)
    v = v / jnp.linalg.norm(v)
    z = jnp.concatenate([w[None], jnp.sqrt(jnp.maximum(1.0 - w**2, 0.0)) * v])
    # Householder reflection sending e₁ to μ (identity when μ = e₁).
    e1 = jnp.zeros_like(mu).at[0].set(1.0)
    u = e1 - mu
    norm = jnp.linalg.norm(u)
    u = jnp.where(norm > 1e-6, u / jnp.maximum(norm, 1e-6), jnp.zeros_like(u))
    return z - 2.0 * jnp.dot(u, z) * u
