"""τ calibration and the model-free lPCA target it is calibrated to.

References: Kamkari et al., ICML 2024 (bisection of ℓ = log τ so that the mean LID of
~128 training points equals a model-free estimate; docs/lid.md); Fukunaga & Olsen,
"An Algorithm for Finding Intrinsic Dimensionality of Data", IEEE Trans. Computers
1971 (local PCA, as scikit-dimension's ``lPCA(ver="FO")``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxood.lid.estimators import threshold_lid
from jaxood.typing import Array


def calibrate_log_tau(
    singular_values: Array,
    target: float,
    *,
    low: float = -100.0,
    high: float = 100.0,
    steps: int = 20,
) -> tuple[float, float]:
    """Bisection on ℓ = log τ so that the mean threshold LID equals ``target``.

    The mean LID is non-increasing in ℓ (from D at ℓ → -∞ to 0 at ℓ → +∞).

    Args:
        singular_values: ``(N, k)`` spectra of N training points.
        target: the model-free mean LID (e.g. from :func:`lpca`).
        low, high: initial bracket of ℓ; steps: bisection steps (reference: 20).

    Returns:
        ``(log_tau, mean LID at log_tau)``.
    """
    s = jnp.asarray(singular_values)
    if s.ndim != 2:
        raise ValueError(f"singular_values must be (N, k), got {s.shape}.")
    if not 0 <= target <= s.shape[-1]:
        raise ValueError(f"target {target} is outside [0, {s.shape[-1]}].")

    def mean_lid(log_tau):
        return float(jnp.mean(threshold_lid(s, log_tau)))

    for _ in range(steps):
        middle = 0.5 * (low + high)
        if mean_lid(middle) > target:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda v: abs(mean_lid(v) - target))
    return best, mean_lid(best)


@functools.partial(jax.jit, static_argnames=("n_neighbors", "chunk_size"))
def lpca(
    points: Array,
    reference: Array,
    *,
    n_neighbors: int = 100,
    alpha: float = 1e-3,
    chunk_size: int = 64,
) -> Array:
    """Pointwise local-PCA intrinsic dimension (Fukunaga–Olsen rule).

    For each point: its ``n_neighbors`` nearest neighbours in ``reference``
    (Euclidean; a point of ``reference`` at distance 0 is its own neighbour), the
    eigenvalues of their covariance, and the count of eigenvalues above
    ``alpha`` × the largest. Always pass ``alpha`` explicitly: with the default of
    scikit-dimension (0.05) image targets are meaninglessly small; Kamkari et al.
    use 0.001.

    Args:
        points: ``(N, D)`` points to estimate at.
        reference: ``(M, D)`` data the neighbourhoods come from, M ≥ n_neighbors.
        n_neighbors: neighbourhood size.
        alpha: Fukunaga–Olsen threshold.
        chunk_size: points per vmapped chunk (memory ~ chunk × M).

    Returns:
        ``(N,)`` integer LID estimates.
    """
    reference = jnp.asarray(reference)
    sq_norms = jnp.sum(reference**2, axis=-1)

    def one(point):
        distances = sq_norms - 2.0 * reference @ point
        _, index = jax.lax.top_k(-distances, n_neighbors)
        neighbours = reference[index]
        centred = neighbours - jnp.mean(neighbours, axis=0, keepdims=True)
        # Eigenvalues of the smaller of the two Gram matrices (they share their
        # non-zero spectrum): a symmetric eigensolver is several times faster than
        # a batched SVD on XLA:CPU, and α = 1e-3 sits far above float32's
        # resolution of λ/λ_max.
        gram = (
            centred.T @ centred
            if centred.shape[1] <= centred.shape[0]
            else centred @ centred.T
        )
        variances = jnp.linalg.eigvalsh(gram)
        return jnp.sum(variances > alpha * variances[-1])

    n = points.shape[0]
    padded = -(-n // chunk_size) * chunk_size
    chunks = jnp.concatenate([points, jnp.repeat(points[-1:], padded - n, axis=0)])
    chunks = chunks.reshape(-1, chunk_size, points.shape[-1])
    return jax.lax.map(jax.vmap(one), chunks).reshape(-1)[:n]
