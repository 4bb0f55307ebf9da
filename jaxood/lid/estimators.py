"""LID estimators from a Jacobian spectrum: threshold count and smooth LIDL.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD Detection
Paradox", ICML 2024 (threshold LID; docs/lid.md);
Tempczyk et al., "LIDL: Local Intrinsic Dimension Estimation Using Approximate
Likelihood", ICML 2022, in the closed form of dgm_geometry's FastFlowLIDL
(docs/lid.md).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood import checks
from jaxood.lid.spectrum import Spectrum
from jaxood.typing import Array


def _singular_values(singular_values: Array) -> Array:
    """Static checks and the NaN check of a ``(..., k)`` spectrum."""
    s = jnp.asarray(singular_values)
    if s.ndim < 1 or not jnp.issubdtype(s.dtype, jnp.floating):
        raise ValueError(
            f"singular_values must be a floating-point (..., k) array, got shape "
            f"{tuple(s.shape)} and dtype {s.dtype}."
        )
    checks.check(
        ~jnp.any(jnp.isnan(s)),
        "singular_values contain {count} NaN values: the spectrum was taken at a "
        "NaN input or a diverged model; drop those points or fix their inputs.",
        count=jnp.sum(jnp.isnan(s)),
    )
    return s


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

    Raises:
        InputError: NaN singular values or thresholds, or τ ≤ 0 (checked on the
            host, or through :mod:`jaxood.checks` under ``jit``).
    """
    s = _singular_values(singular_values)
    if (log_tau is None) == (tau is None):
        raise ValueError("Give exactly one of log_tau and tau.")
    if tau is not None:
        tau = jnp.asarray(tau, s.dtype)
        checks.check(
            jnp.all(tau > 0),
            "tau must be positive and not NaN, got {tau}; use log_tau for ℓ = log τ.",
            tau=tau if tau.ndim == 0 else jnp.min(tau),
        )
        log_tau = jnp.log(tau)
    log_tau = jnp.asarray(log_tau, s.dtype)
    if log_tau.ndim > 1:
        raise ValueError(
            f"log_tau must be a scalar or (T,), got shape {tuple(log_tau.shape)}."
        )
    checks.check(
        ~jnp.any(jnp.isnan(log_tau)),
        "log_tau contains NaN ({count} values): pass finite thresholds ℓ = log τ.",
        count=jnp.sum(jnp.isnan(log_tau)),
    )
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
    if not isinstance(spectrum, Spectrum):
        raise TypeError(
            f"spectrum must be a jaxood.lid.Spectrum, got {type(spectrum).__name__}."
        )
    if spectrum.right_vectors is None:
        raise ValueError("lidl needs the right singular vectors: vectors=True.")
    s = _singular_values(spectrum.singular_values)
    if s.ndim != 1 or spectrum.right_vectors.ndim != 2:
        raise ValueError(
            f"spectrum holds singular values of shape {tuple(s.shape)}: lidl takes "
            "the spectrum of one point; for a batch from flow_spectra use "
            "jax.vmap(lidl, in_axes=(0, 0, None))(spectrum, z0, deltas)."
        )
    latent_dim = spectrum.right_vectors.shape[-1]
    if jnp.size(z) != latent_dim:
        raise ValueError(
            f"z has {jnp.size(z)} values (shape {jnp.shape(z)}), the spectrum was "
            f"taken at a latent of {latent_dim}: pass the z of that spectrum (for a "
            "batch, vmap over spectrum and z together)."
        )
    deltas = jnp.asarray(deltas)
    if deltas.ndim != 1:
        raise ValueError(
            f"deltas must be a (S,) array of log scales δ, got shape "
            f"{tuple(deltas.shape)}; wrap one δ as jnp.array([delta])."
        )
    checks.finite(deltas, "deltas")
    checks.finite(z, "z")
    lam = spectrum.singular_values**2
    z_tilde = spectrum.right_vectors @ jnp.ravel(z)
    var = jnp.exp(2.0 * jnp.asarray(deltas))[:, None]
    lam, z_sq = lam[None, :], (z_tilde**2)[None, :]
    denominator = lam + var
    return jnp.sum(lam / denominator, axis=-1) + var[:, 0] * jnp.sum(
        lam * z_sq / denominator**2, axis=-1
    )
