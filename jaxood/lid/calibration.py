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
import numpy as np

from jaxood import checks
from jaxood.lid.estimators import _singular_values, threshold_lid
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
    s = _singular_values(singular_values)  # refuses NaN
    if s.ndim != 2 or s.shape[0] == 0:
        raise ValueError(
            f"singular_values must be (N, k) spectra of N ≥ 1 points, got shape "
            f"{tuple(s.shape)}."
        )
    target = float(target)
    if not 0 <= target <= s.shape[-1]:  # False for NaN
        raise ValueError(
            f"target {target} is outside [0, {s.shape[-1]}]: pass a mean LID, e.g. "
            "the mean of the model-free lpca(...) estimates."
        )
    steps = checks.positive_int(steps, "steps")
    if not low < high:
        raise ValueError(f"need low < high (finite), got low={low}, high={high}.")

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


def widest_log_tau(singular_values: Array, log_taus: Array) -> float:
    """The ℓ = log τ of ``log_taus`` at which the threshold LID of these
    in-distribution points varies most (largest standard deviation): a τ chosen
    from in-distribution data alone, where the threshold resolves the points'
    differences instead of counting (nearly) all or no directions.

    Not from the paper: ours. On three Fashion-MNIST flows it lands 2.8–3.2 nats
    below the lPCA-calibrated τ, and the dual threshold's FMNIST→MNIST envelope
    rises from 0.72–0.77 to 0.92–0.93 there (``experiments/README.md``).

    Args:
        singular_values: ``(N, k)`` spectra of N ≥ 2 in-distribution points that
            played no part in training (e.g. validation images).
        log_taus: ``(T,)`` candidate ℓ; the first of equally wide ones is returned.
    """
    s = _singular_values(singular_values)  # refuses NaN
    if s.ndim != 2 or s.shape[0] < 2:
        raise ValueError(
            f"singular_values must be (N, k) spectra of N ≥ 2 points, got shape "
            f"{tuple(s.shape)}."
        )
    log_taus = np.asarray(log_taus, np.float64)
    counts = np.asarray(threshold_lid(s, jnp.asarray(log_taus)), np.float64)  # (N, T)
    return float(log_taus[np.argmax(np.std(counts, axis=0))])


@functools.partial(jax.jit, static_argnames=("n_neighbors", "chunk_size"))
def _lpca(
    points: Array,
    reference: Array,
    *,
    n_neighbors: int,
    alpha: float,
    chunk_size: int,
) -> Array:
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

    Raises:
        InputError: NaN/inf in ``points`` or ``reference``, or ``alpha`` outside
            (0, 1) (under ``jit``: through :mod:`jaxood.checks`).
    """
    points, reference = jnp.asarray(points), jnp.asarray(reference)
    for name, a in (("points", points), ("reference", reference)):
        if a.ndim != 2 or not jnp.issubdtype(a.dtype, jnp.floating):
            raise ValueError(
                f"{name} must be a floating-point (num_points, D) array, got shape "
                f"{tuple(a.shape)} and dtype {a.dtype}; flatten images with "
                "x.reshape(len(x), -1)."
            )
    if points.shape[1] != reference.shape[1]:
        raise ValueError(
            f"points have D = {points.shape[1]} but reference has D = "
            f"{reference.shape[1]}: both must be flattened the same way."
        )
    if points.shape[0] == 0:
        raise ValueError("points is empty: pass at least one point.")
    n_neighbors = checks.positive_int(n_neighbors, "n_neighbors", 2)
    chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if reference.shape[0] < n_neighbors:
        raise ValueError(
            f"reference has {reference.shape[0]} points, fewer than n_neighbors = "
            f"{n_neighbors}: lower n_neighbors or pass more reference points."
        )
    checks.finite(points, "points")
    checks.finite(reference, "reference")
    checks.check(
        (alpha > 0) & (alpha < 1), "alpha must lie in (0, 1), got {alpha}.", alpha=alpha
    )
    return _lpca(
        points,
        reference,
        n_neighbors=n_neighbors,
        alpha=alpha,
        chunk_size=chunk_size,
    )
