"""The hole indicator: spread of decoder log-likelihoods over posterior samples.

An outlier whose code lands in a vacant hole of a compact latent space gets
reconstructions of very different quality from nearby posterior draws, so the
sample standard deviation of ``log p(x|z_i)``, ``z_i ~ q(z|x)``, is large there.
Needs no memory bank and no nearest neighbours.

References: Glazunov & Zarras, "Vacant Holes for Unsupervised Detection of the
Outliers in Compact Latent Representation", UAI 2023 (eq. 8).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood import checks
from jaxood.typing import Array


def hole_indicator(decoder_log_likelihoods: Array) -> Array:
    """``Σ_z[x] = std_i log p(x|z_i)`` (unbiased, ddof = 1): the anomaly score.

    Args:
        decoder_log_likelihoods: ``(B, N)`` log p(x|z_i) in nats for N ≥ 2 posterior
            draws (:func:`jaxood.vae.decoder_log_likelihoods`, default N = 100).

    Returns:
        ``(B,)`` anomaly scores in nats; higher = more OOD (the sign is inferred from
        the authors' 2022 code, which treats OOD as the high class).
    """
    values = jnp.asarray(decoder_log_likelihoods)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(
            "decoder_log_likelihoods must be (B, N) with N ≥ 2 posterior samples, "
            f"got shape {values.shape}."
        )
    checks.finite(values, "decoder_log_likelihoods")
    return jnp.std(values, axis=1, ddof=1)
