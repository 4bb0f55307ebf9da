"""Likelihood ratio against a general-distribution model.

References: Schirrmeister et al., "Understanding Anomaly Detection with Deep
Invertible Networks through Hierarchies of Distributions and Features", NeurIPS 2020
(general = a model of broad natural images, optionally sharpened by the outlier loss of
:func:`jaxood.flows.losses.outlier_loss`); Ren et al., "Likelihood Ratios for
Out-of-Distribution Detection", NeurIPS 2019 (general = a background model trained on
perturbed in-distribution data).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood.typing import Array


def likelihood_ratio(log_p_in: Array, log_p_general: Array) -> Array:
    """``log p_general(x) - log p_in(x)``: anomaly score, the negated LLR.

    Both models must score the same inputs in the same space and units (nats); the
    constant parts (pixel statistics shared by every natural image) cancel.

    Args:
        log_p_in: ``(B,)`` log-likelihoods under the in-distribution model.
        log_p_general: ``(B,)`` log-likelihoods under the general model.

    Returns:
        ``(B,)`` anomaly scores.
    """
    log_p_in, log_p_general = jnp.asarray(log_p_in), jnp.asarray(log_p_general)
    if log_p_in.shape != log_p_general.shape:
        raise ValueError(
            f"log_p_in {log_p_in.shape} and log_p_general {log_p_general.shape} "
            "must score the same inputs."
        )
    return log_p_general - log_p_in
