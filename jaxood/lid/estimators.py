"""LID estimators from a Jacobian spectrum: threshold count and smooth LIDL.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD Detection
Paradox", ICML 2024 (threshold LID; docs/lid.md);
Tempczyk et al., "LIDL: Local Intrinsic Dimension Estimation Using Approximate
Likelihood", ICML 2022, in the closed form of dgm_geometry's FastFlowLIDL
(docs/lid.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxood.lid.spectrum import Spectrum
from jaxood.typing import Array


def threshold_lid(
    singular_values: Array,
    log_tau: Array | float | None = None,
    *,
    tau: Array | float | None = None,
) -> Array:
    """``#{i : σ_i > τ}``, for one or many thresholds.

    Args:
        singular_values: ``(..., k)`` singular values of J.
        log_tau: scalar or ``(T,)`` values of ℓ = log τ (the reference's
            parametrisation; sweeps use ℓ in linspace(-10, 5, 50)).
        tau: alternatively τ itself, which must be positive.

    Returns:
        ``(...,)`` for a scalar threshold, else ``(..., T)`` integer counts.
    """
    s = jnp.asarray(singular_values)
    if (log_tau is None) == (tau is None):
        raise ValueError("Give exactly one of log_tau and tau.")
    if tau is not None:
        tau = jnp.asarray(tau, s.dtype)
        if not isinstance(tau, jax.core.Tracer) and bool(jnp.any(tau <= 0)):
            raise ValueError(f"tau must be positive, got {tau}; use log_tau for ℓ.")
        log_tau = jnp.log(tau)
    log_tau = jnp.asarray(log_tau, s.dtype)
    log_s = jnp.log(jnp.maximum(s, jnp.finfo(s.dtype).tiny))
    if log_tau.ndim == 0:
        return jnp.sum(log_s > log_tau, axis=-1)
    thresholds = log_tau.reshape((1,) * (log_s.ndim - 1) + (-1, 1))
    return jnp.sum(log_s[..., None, :] > thresholds, axis=-1)


def lidl(spectrum: Spectrum, z: Array, deltas: Array) -> Array:
    """Smooth LID of the linearised decoder at scales ``δ`` (σ² = e^{2δ}).

    ``LID_δ = Σ_i λ_i/(λ_i + σ²) + σ² Σ_i λ_i z̃_i² / (λ_i + σ²)²`` with
    ``λ_i = σ_i(J)²`` and ``z̃ = Vᵀ z``: the derivative in δ of the log-density of
    the linearised model convolved with N(0, σ² I), plus D. Equal to the rank of J as
    δ → -∞ and to 0 as δ → +∞. One SVD serves every δ.

    Args:
        spectrum: with right singular vectors (``vectors=True``).
        z: the latent point the spectrum was taken at (z0 = f⁻¹(x) for a flow).
        deltas: ``(S,)`` log standard deviations δ.

    Returns:
        ``(S,)`` LID values.
    """
    if spectrum.right_vectors is None:
        raise ValueError("lidl needs the right singular vectors: vectors=True.")
    latent_dim = spectrum.right_vectors.shape[-1]
    if jnp.size(z) != latent_dim:
        raise ValueError(
            f"z has {jnp.size(z)} values (shape {jnp.shape(z)}), the spectrum was "
            f"taken at a latent of {latent_dim}: pass the z of that spectrum (for a "
            "batch, vmap over spectrum and z together)."
        )
    lam = spectrum.singular_values**2
    z_tilde = spectrum.right_vectors @ jnp.ravel(z)
    var = jnp.exp(2.0 * jnp.asarray(deltas))[:, None]
    lam, z_sq = lam[None, :], (z_tilde**2)[None, :]
    denominator = lam + var
    return jnp.sum(lam / denominator, axis=-1) + var[:, 0] * jnp.sum(
        lam * z_sq / denominator**2, axis=-1
    )
