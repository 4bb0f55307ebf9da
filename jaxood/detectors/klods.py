"""KLODS-R: closed-form Gaussian KL of local latent patches to N(0, I), for groups or
single inputs. A **reconstruction** (the paper's estimator could not be checked).

A flow maps in-distribution data to latents distributed as N(0, I); KL divergence is
invariant under the flow, so a group of OOD inputs has latents far from the prior even
when each input is likely. Per group: cut every latent map into non-overlapping k×k
patches across all channels (m = k²C values, the "local pixel dependence"), pool the
patches of all inputs of the group (n = M × patches per input samples), fit their
mean μ̂ and covariance Σ̂ (+ ridge εI), and return

    KL(N(μ̂, Σ̂) ‖ N(0, I_m)) = ½ (tr Σ̂ + ‖μ̂‖² − m − log det Σ̂)
                             = −½ log det R              (total correlation, ≥ 0)
                             + Σ_i ½ (σ_i² + μ_i² − 1 − log σ_i²)   (dimension-wise)

with R the correlation matrix of Σ̂. The Gaussian KL is a lower bound of the true KL of
the patch distribution to N(0, I) (it keeps the first two moments). Group size 1 is
the point-wise variant. log det through Cholesky, in the input precision (float64 when
x64 is enabled).

References: Zhang et al., "Kullback-Leibler Divergence-Based Out-of-Distribution
Detection with Flow-Based Generative Models", IEEE TKDE 2023 (arXiv 2002.03328) —
reconstructed as described in docs/detectors.md (KLODS-R).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.typing import Array


class KLParts(NamedTuple):
    """Per-group anomaly scores (nats): full = total_correlation + dimension_wise."""

    full: Array
    total_correlation: Array
    dimension_wise: Array


def patches(latents: Array, patch_size: int = 2) -> Array:
    """Non-overlapping ``k×k×C`` patches: ``(..., H, W, C) -> (..., P, k·k·C)``."""
    *lead, h, w, c = latents.shape
    k = patch_size
    if k < 1 or h % k or w % k:
        raise ValueError(
            f"patch_size {patch_size} must divide the latent height and width "
            f"({h}×{w})."
        )
    x = latents.reshape(*lead, h // k, k, w // k, k, c)
    x = jnp.moveaxis(x, -4, -3)  # (..., h/k, w/k, k, k, c)
    return x.reshape(*lead, (h // k) * (w // k), k * k * c)


def gaussian_kl_parts(samples: Array, ridge: float = 1e-6) -> KLParts:
    """KL of the moment-matched Gaussian of ``samples (n, m)`` to N(0, I_m), split."""
    n, m = samples.shape
    if n < 2:
        raise ValueError(f"Need at least 2 samples for a covariance, got {n}.")
    mu = jnp.mean(samples, axis=0)
    centred = samples - mu[None, :]
    cov = centred.T @ centred / (n - 1) + ridge * jnp.eye(m, dtype=samples.dtype)
    var = jnp.diagonal(cov)
    chol = jnp.linalg.cholesky(cov)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    log_det_r = log_det - jnp.sum(jnp.log(var))
    total_correlation = -0.5 * log_det_r
    dimension_wise = 0.5 * jnp.sum(var + mu**2 - 1.0 - jnp.log(var))
    return KLParts(
        total_correlation + dimension_wise, total_correlation, dimension_wise
    )


def klods(latents: Array, *, patch_size: int = 2, ridge: float = 1e-6) -> KLParts:
    """KLODS-R scores of groups of standardised latents of one level.

    Args:
        latents: ``(G, M, H, W, C)``: G groups of M inputs' latents (N(0, I) under the
            model, e.g. ``LogProb.latents[level]``); M = 1 is the point-wise variant.
        patch_size: k of the k×k patches (m = k²C must stay well below the number of
            pooled patches M·HW/k²).
        ridge: ε added to the covariance diagonal.

    Returns:
        :class:`KLParts` of ``(G,)`` anomaly scores (higher = more OOD).
    """
    latents = jnp.asarray(latents)
    if latents.ndim != 5:
        raise ValueError(
            f"latents must be (G, M, H, W, C) groups, got shape {latents.shape}; "
            "for single inputs use M = 1: latents[:, None]."
        )
    checks.finite(latents, "latents")
    _, mm, num, m = jax.eval_shape(lambda x: patches(x, patch_size), latents).shape
    if mm * num < 2 * m:
        raise ValueError(
            f"{mm * num} pooled patches for a {m}-dimensional covariance: use a "
            "smaller patch_size or larger groups."
        )
    return _klods(latents, patch_size, ridge)


@functools.partial(jax.jit, static_argnums=1)
def _klods(latents: Array, patch_size: int, ridge: float) -> KLParts:
    p = patches(latents, patch_size)  # (G, M, P, m)
    g, mm, num, m = p.shape
    return jax.vmap(lambda s: gaussian_kl_parts(s, ridge))(p.reshape(g, mm * num, m))
