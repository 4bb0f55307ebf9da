"""WAIC over an ensemble of independently trained models.

``WAIC(x) = E_θ[log p_θ(x)] − Var_θ[log p_θ(x)]`` over K models (different random
inits) taken as posterior samples; the variance is unbiased (ddof = 1). Inputs the
ensemble disagrees on lose score. Low WAIC = OOD, so the anomaly score is −WAIC.

References: Choi, Jang & Alemi, "WAIC, but Why? Generative Ensembles for Robust
Anomaly Detection", 2018 (arXiv 1810.01392).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood.typing import Array


def waic(log_p: Array) -> Array:
    """``−WAIC(x)``, the anomaly score, from ``(K, B)`` log-likelihoods in nats.

    Args:
        log_p: row k = log p under ensemble member k, all in the same units, K ≥ 2.

    Returns:
        ``(B,)`` anomaly scores, in the unit of ``log_p``.
    """
    log_p = jnp.asarray(log_p)
    if log_p.ndim != 2 or log_p.shape[0] < 2:
        raise ValueError(
            f"log_p must be (K, B) with K ≥ 2 ensemble members, got {log_p.shape}."
        )
    return -(jnp.mean(log_p, axis=0) - jnp.var(log_p, axis=0, ddof=1))
