"""Typicality test: distance of a group's mean NLL from the model's entropy estimate.

``stats = fit(nll_train)`` estimates the entropy ``Ĥ = mean −log p(x)`` over
in-distribution data (the mean, not the sum printed in Vacant Holes eq. 9);
``score(stats, nll)`` returns ``|mean_{x∈group} −log p(x) − Ĥ|`` for every group:
groups of one (M = 1) when ``nll`` is ``(N,)``, groups of M when it is ``(G, M)``.
Higher = less typical = more OOD. Too-likely inputs (the likelihood paradox) score
high as well as too-unlikely ones.

References: Nalisnick, Matsukawa, Teh & Lakshminarayanan, "Detecting
Out-of-Distribution Inputs to Deep Generative Models Using Typicality", 2019
(arXiv 1906.02994); Glazunov & Zarras, UAI 2023 (eq. 9, M = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.detectors.detector import Detector
from jaxood.typing import Array, PRNGKey


def _fit(nll_in: Array) -> dict[str, Array]:
    """``{"entropy": Ĥ}``, the mean of ``(N,)`` in-distribution NLLs.

    Jittable: the shape check is static; the NaN/inf check goes through
    :mod:`jaxood.checks` (at once on concrete input, under ``jit`` when checked).
    """
    nll_in = jnp.asarray(nll_in)
    if nll_in.ndim != 1 or nll_in.size < 2:
        raise ValueError(
            f"fit needs (N,) in-distribution NLLs with N ≥ 2, got {nll_in.shape}."
        )
    checks.finite(nll_in, "nll_in", "Drop or fix the inputs the model scored NaN.")
    return {"entropy": jnp.mean(nll_in)}


def _score(stats: dict[str, Array], nll: Array) -> Array:
    nll = jnp.asarray(nll)
    if nll.ndim not in (1, 2) or nll.size == 0:
        raise ValueError(
            f"nll must be non-empty (N,) or (G, M) groups, got shape {nll.shape}."
        )
    checks.finite(nll, "nll")
    group_mean = nll if nll.ndim == 1 else jnp.mean(nll, axis=1)
    return jnp.abs(group_mean - stats["entropy"])


def typicality() -> Detector:
    """The typicality test as a :class:`Detector` of NLLs in nats (or bits/dim,
    as long as fit and score use the same unit)."""
    return Detector(_fit, _score)


def bootstrap_threshold(
    key: PRNGKey,
    stats: dict[str, Array],
    nll_val: Array,
    group_size: int,
    *,
    num_bootstrap: int = 50,
    alpha: float = 0.99,
) -> Array:
    """The test's threshold ε_M^α: α-quantile of the statistic over K bootstrap groups.

    Each of the K groups draws ``group_size`` held-out ID validation NLLs with
    replacement (Nalisnick et al.'s Algorithm 1); an input group is declared OOD when
    its score exceeds the threshold. AUROCs use the score itself.

    Args:
        key: PRNG key of the resampling.
        stats: from ``typicality().fit`` on training NLLs.
        nll_val: ``(N,)`` held-out ID NLLs (same unit as ``stats``).
        group_size: M.
        num_bootstrap: K.
        alpha: quantile level.

    Returns:
        Scalar threshold.
    """
    nll_val = jnp.asarray(nll_val)
    group_size = checks.positive_int(group_size, "group_size")
    num_bootstrap = checks.positive_int(num_bootstrap, "num_bootstrap")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}.")
    if nll_val.ndim != 1 or nll_val.size == 0:
        raise ValueError(f"nll_val must be non-empty (N,), got shape {nll_val.shape}.")
    index = jax.random.randint(key, (num_bootstrap, group_size), 0, nll_val.shape[0])
    return jnp.quantile(_score(stats, nll_val[index]), alpha)
