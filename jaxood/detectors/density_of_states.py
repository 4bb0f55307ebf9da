"""Density of states: a density over a model's per-image statistics, fit on ID data.

Every single statistic of a generative model fails on some pair (the likelihood on
FMNIST → MNIST, the hole indicator on flipped images, the ratios on noise). DoSE
treats the statistics of an image (log p, per-scale terms, latent norms, rate,
distortion, ...) as a feature vector and models where in-distribution images put
it; an input is anomalous when its vector lands where ID vectors are rare, in any
direction and in any combination of features.

``state = fit(stats)`` takes a table ``{name: (N,)}`` of in-distribution statistics
only (training or held-out images, never OOD ones): it standardises every feature
with the ID mean and standard deviation, whitens with their ID correlation matrix
(plus a small ridge: tables often hold exactly dependent features, such as log p and
its per-scale terms) and fits a density there. ``score(state, stats)`` returns
``−log q(standardised features)`` per image, higher = more OOD. The density is of
the standardised (dimensionless) features, so changing a feature's units (a positive
scale and a shift) leaves every score unchanged.

Two densities:

- ``"kde"``: a Gaussian kernel density with one bandwidth h in whitened space (a
  kernel covariance of h² times the ID correlation matrix, as scipy's
  ``gaussian_kde``); h maximises the leave-one-out log-likelihood of the ID fit set
  over a grid around Scott's rule, so the choice sees ID data only.
- ``"gmm"``: a Gaussian mixture with full covariances fit by EM in whitened space,
  a one-class model that does not keep the fit set.

References: Morningstar, Ham, Gallagher, Lakshminarayanan, Alemi & Dillon, "Density
of States Estimation for Out-of-Distribution Detection", AISTATS 2021.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from jaxood import checks
from jaxood.detectors.detector import Detector
from jaxood.typing import Array, PRNGKey

METHODS = ("kde", "gmm")
# Bandwidths tried, as multiples of Scott's rule N^(-1/(F+4)) in whitened units.
BANDWIDTH_FACTORS = tuple(float(f) for f in np.geomspace(0.1, 4.0, 25))
_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True)
class DensityState:
    """What :func:`density_of_states`'s ``fit`` keeps (a pytree; jittable).

    Attributes:
        names: the feature names, sorted (static).
        method: ``"kde"`` or ``"gmm"`` (static).
        mean, std: ``(F,)`` ID mean and standard deviation of each feature.
        whiten: ``(F, F)`` the inverse Cholesky factor of the ID correlation
            matrix plus the ridge: ``w = whiten @ standardised``.
        log_det_whiten: log |det whiten|, the density's change of variables.
        points: KDE: ``(N, F)`` whitened fit set; GMM: ``(K, F)`` component means.
        bandwidth: KDE: the selected h (whitened units); GMM: unused (0).
        cholesky: GMM: ``(K, F, F)`` Cholesky factors of the component
            covariances; KDE: ``(0,)``.
        log_weights: GMM: ``(K,)`` log mixture weights; KDE: ``(0,)``.
        fit_log_likelihood: mean log q of the fit set (KDE: leave-one-out), per
            image, in nats of the standardised features: an ID-only diagnostic.
    """

    names: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))
    method: str = dataclasses.field(metadata=dict(static=True))
    mean: Array
    std: Array
    whiten: Array
    log_det_whiten: Array
    points: Array
    bandwidth: Array
    cholesky: Array
    log_weights: Array
    fit_log_likelihood: Array


jax.tree_util.register_dataclass(DensityState)


def _table(stats: Mapping[str, Array], what: str) -> tuple[tuple[str, ...], Array]:
    """``{name: (N,)}`` -> (sorted names, ``(N, F)`` float32), shapes checked."""
    if not isinstance(stats, Mapping) or not stats:
        raise ValueError(
            f"{what} must be a non-empty dict of name -> (N,) statistics, got "
            f"{type(stats).__name__} {stats if isinstance(stats, Mapping) else ''}."
        )
    names = tuple(sorted(stats))
    columns = [jnp.asarray(stats[n], jnp.float32) for n in names]
    lengths = {n: c.shape for n, c in zip(names, columns, strict=True)}
    if any(len(s) != 1 for s in lengths.values()) or len(set(lengths.values())) > 1:
        raise ValueError(
            f"every statistic of {what} must be (N,) with the same N, got shapes "
            f"{lengths}."
        )
    table = jnp.stack(columns, axis=1)
    for name, column in zip(names, columns, strict=True):
        checks.finite(
            column,
            f"{what}[{name!r}]",
            "Drop the images whose statistic is not finite (or fix the model) "
            "before fitting or scoring.",
        )
    return names, table


def _whitened(mean: Array, std: Array, whiten: Array, table: Array) -> Array:
    return ((table - mean[None]) / std[None]) @ whiten.T


def _kde_log_density(points: Array, bandwidth: Array, w: Array) -> Array:
    """log of the isotropic Gaussian KDE at one whitened point ``w`` (F,)."""
    squared = jnp.sum((points - w[None]) ** 2, axis=1)
    num, dims = points.shape
    return (
        logsumexp(-0.5 * squared / bandwidth**2)
        - math.log(num)
        - dims * (jnp.log(bandwidth) + 0.5 * _LOG_2PI)
    )


def _leave_one_out(points: Array, factors: Array) -> tuple[Array, Array]:
    """Mean leave-one-out log-likelihood of the fit set per bandwidth ``(G,)``,
    and the bandwidths themselves."""
    num, dims = points.shape
    scott = num ** (-1.0 / (dims + 4))
    bandwidths = scott * factors
    norms = jnp.sum(points**2, axis=1)
    squared = jnp.maximum(norms[:, None] + norms[None, :] - 2 * points @ points.T, 0)
    squared = jnp.where(jnp.eye(num, dtype=bool), jnp.inf, squared)

    def mean_log_lik(h):
        log_k = logsumexp(-0.5 * squared / h**2, axis=1)
        return (
            jnp.mean(log_k) - math.log(num - 1) - dims * (jnp.log(h) + 0.5 * _LOG_2PI)
        )

    return jax.lax.map(mean_log_lik, bandwidths), bandwidths


def _gaussian_log_density(mean: Array, cholesky: Array, w: Array) -> Array:
    solved = jax.scipy.linalg.solve_triangular(cholesky, w - mean, lower=True)
    half_log_det = jnp.sum(jnp.log(jnp.diagonal(cholesky)))
    return -0.5 * jnp.sum(solved**2) - half_log_det - 0.5 * mean.shape[0] * _LOG_2PI


def _mixture_log_density(means, cholesky, log_weights, w: Array) -> Array:
    per_component = jax.vmap(_gaussian_log_density, (0, 0, None))(means, cholesky, w)
    return logsumexp(log_weights + per_component)


def _em(points: Array, key: PRNGKey, num_components: int, steps: int, ridge: float):
    """EM for a full-covariance Gaussian mixture; means start at distinct points."""
    num, dims = points.shape
    start = jax.random.choice(key, num, (num_components,), replace=False)
    eye = jnp.eye(dims, dtype=points.dtype)
    init = (
        points[start],
        jnp.broadcast_to(eye, (num_components, dims, dims)),
        jnp.full((num_components,), -math.log(num_components), points.dtype),
    )

    def log_resp(params):
        means, chol, log_w = params
        joint = jax.vmap(
            lambda w: (
                log_w + jax.vmap(_gaussian_log_density, (0, 0, None))(means, chol, w)
            )
        )(points)
        return joint - logsumexp(joint, axis=1, keepdims=True)

    def step(_, params):
        resp = jnp.exp(log_resp(params))  # (N, K)
        counts = jnp.sum(resp, axis=0) + 1e-6
        means = (resp.T @ points) / counts[:, None]
        centred = points[None] - means[:, None]  # (K, N, F)
        cov = (
            jnp.einsum("kn,knf,kng->kfg", resp.T, centred, centred)
            / counts[:, None, None]
        )
        chol = jnp.linalg.cholesky(cov + ridge * eye[None])
        return means, chol, jnp.log(counts / num)

    return jax.lax.fori_loop(0, steps, step, init)


def density_of_states(
    method: str = "kde",
    *,
    ridge: float = 1e-3,
    num_components: int = 4,
    em_steps: int = 200,
    chunk_size: int = 256,
) -> Detector:
    """DoSE as a :class:`Detector` over tables of per-image statistics.

    Args:
        method: ``"kde"`` (leave-one-out bandwidth; the fit holds the N × N
            distances of the fit set: 16 MB at N = 2,000, 400 MB at N = 10,000)
            or ``"gmm"``.
        ridge: added to the ID correlation matrix before whitening (and to each
            mixture component's covariance): exactly dependent features stay
            finite.
        num_components: GMM components K.
        em_steps: GMM EM iterations.
        chunk_size: images per vectorised block when scoring (memory: chunk × N).

    Returns:
        ``Detector(fit, score)``: ``fit(stats, key=None) -> DensityState`` with
        ``stats`` a dict ``{name: (N,)}`` of ID statistics (N ≥ 3, finite, no
        constant feature; the key seeds the GMM's start, default key 0);
        ``score(state, stats) -> (M,)`` anomaly scores −log q in nats of the
        standardised features, higher = more OOD; ``stats`` must have exactly
        the fit's feature names. Both jit (the names are static).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    num_components = checks.positive_int(num_components, "num_components")
    em_steps = checks.positive_int(em_steps, "em_steps")
    chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if not ridge > 0:
        raise ValueError(f"ridge must be positive, got {ridge}.")

    def fit(stats: Mapping[str, Array], key: PRNGKey | None = None) -> DensityState:
        names, table = _table(stats, "stats")
        num, dims = table.shape
        minimum = max(3, num_components if method == "gmm" else 3)
        if num < minimum:
            raise ValueError(
                f"fit needs at least {minimum} in-distribution rows, got {num}."
            )
        mean, std = jnp.mean(table, axis=0), jnp.std(table, axis=0)
        smallest = jnp.min(std / (jnp.abs(mean) + 1e-30))
        checks.check(
            smallest > 1e-6,
            "stats has a feature that is constant over the fit set (relative "
            "spread {spread:.3g}); drop it: it cannot be standardised.",
            spread=smallest,
        )
        z = (table - mean[None]) / std[None]
        corr = (z.T @ z) / num + ridge * jnp.eye(dims, dtype=z.dtype)
        whiten = jnp.linalg.inv(jnp.linalg.cholesky(corr))
        log_det_whiten = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(whiten))))
        points = z @ whiten.T
        empty = jnp.zeros((0,), table.dtype)
        state = functools.partial(
            DensityState, names, method, mean, std, whiten, log_det_whiten
        )
        if method == "kde":
            loo, bandwidths = _leave_one_out(points, jnp.asarray(BANDWIDTH_FACTORS))
            best = jnp.argmax(loo)
            fit_log_lik = loo[best] + log_det_whiten
            return state(points, bandwidths[best], empty, empty, fit_log_lik)
        key = jax.random.key(0) if key is None else key
        means, chol, log_w = _em(points, key, num_components, em_steps, ridge)
        log_q = jax.vmap(lambda w: _mixture_log_density(means, chol, log_w, w))(points)
        no_bandwidth = jnp.zeros((), table.dtype)
        return state(means, no_bandwidth, chol, log_w, jnp.mean(log_q) + log_det_whiten)

    def score(state: DensityState, stats: Mapping[str, Array]) -> Array:
        if not isinstance(stats, Mapping) or set(stats) != set(state.names):
            given = set(stats) if isinstance(stats, Mapping) else set()
            raise ValueError(
                "stats must have exactly the fitted features; missing "
                f"{sorted(set(state.names) - given)}, unexpected "
                f"{sorted(given - set(state.names))}."
            )
        _, table = _table(stats, "stats")
        w = _whitened(state.mean, state.std, state.whiten, table)
        if state.method == "kde":
            one = functools.partial(_kde_log_density, state.points, state.bandwidth)
        else:
            one = functools.partial(
                _mixture_log_density, state.points, state.cholesky, state.log_weights
            )
        log_q = jax.lax.map(one, w, batch_size=chunk_size)
        return -(log_q + state.log_det_whiten)

    return Detector(fit, score)
