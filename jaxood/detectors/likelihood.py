"""Likelihood-based anomaly scores of a flow: the whole image, or its final scale.

References: Nalisnick et al., "Do Deep Generative Models Know What They Don't Know?",
ICLR 2019 (the raw likelihood and its paradox); Schirrmeister et al.,
"Understanding Anomaly Detection with Deep Invertible Networks through Hierarchies of
Distributions and Features", NeurIPS 2020 (the final-scale score lp_{L-1}).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood.typing import Array


def negative_log_likelihood(log_p: Array) -> Array:
    """``-log p(x)`` in nats: the raw likelihood as an anomaly score.

    Args:
        log_p: ``(B,)`` log-likelihoods in nats (e.g. ``LogProb.total``).

    Returns:
        ``(B,)`` anomaly scores. Known to fail on simpler OOD data (FMNIST -> MNIST
        AUROC well below 0.5): the likelihood paradox.
    """
    return -jnp.asarray(log_p)


def final_scale(per_scale: Array) -> Array:
    """``-lp_{L-1}(x)``: the likelihood contribution of the coarsest scale only.

    Args:
        per_scale: ``(B, L)`` per-scale log-likelihoods (``LogProb.per_scale``).

    Returns:
        ``(B,)`` anomaly scores. The fine scales carry the local pixel statistics
        shared by all natural images; the coarsest one is more semantic.
    """
    per_scale = jnp.asarray(per_scale)
    if per_scale.ndim != 2:
        raise ValueError(f"per_scale must be (B, L), got shape {per_scale.shape}.")
    return -per_scale[:, -1]
