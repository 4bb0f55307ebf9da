"""FLIPD: local intrinsic dimension from a diffusion model's score at one noise level.

For data x, a VP-SDE y = ψ(t) x + σ(t) ε and the model's score s(y, t) ≈ ∇ log p_t(y),

    FLIPD(x, t0) = D + σ(t0)² [ tr ∇_y s(y, t0) + ‖s(y, t0)‖² ]   at y = ψ(t0) x.

It is D + ∂/∂δ log ϱ(x, δ), the rate at which the log density of the data blurred by
Gaussian noise of scale e^δ = σ(t0)/ψ(t0) changes with δ (LIDL's definition of LID),
turned into score terms by the Fokker–Planck equation. As t0 → 0 it tends to D (no
blur yet resolves the manifold at float precision), on a plateau where the blur is
far larger than the data's off-manifold spread and far smaller than the manifold's
curvature it is the intrinsic dimension d, and as t0 → 1 it tends to 0 (ψ → 0:
everything is one Gaussian blob). Units: dimensions (a real number, not an integer).

Cost: one score evaluation plus D JVPs (exact trace) or k JVPs (Hutchinson), against
4D score evaluations and an SVD for the normal bundle.

    score_fn = jaxood.diffusion.score_function(model, params)   # or your own
    lid = flipd(score_fn, x, 0.05, sde=VPSDE())                 # exact trace
    lid = flipd(score_fn, x, 0.05, key, sde=VPSDE(), num_probes=8)
    curves = flipd_sweep(score_fn, xs, jnp.geomspace(1e-3, 1, 50), key, sde=VPSDE())
    t0 = knee(t0s, curves.mean(0))

References: Kamkari, Ross, Hosseinzadeh, Cresswell, Loaiza-Ganem, "A Geometric View
of Data Complexity: Efficient Local Intrinsic Dimension Estimation with Diffusion
Models", NeurIPS 2024 (arXiv 2406.03537); Tempczyk et al., "LIDL", ICML 2022;
Satopää et al., "Finding a 'Kneedle' in a Haystack", ICDCS workshops 2011.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import checks, parallel
from jaxood.diffusion.divergence import PROBES, probes, value_and_divergence
from jaxood.diffusion.sde import VPSDE
from jaxood.typing import Array, PRNGKey

ScoreFn = Callable[[Array, Array], Array]


def as_pytree(score_fn: ScoreFn) -> jax.tree_util.Partial:
    """``score_fn`` as a ``jax.tree_util.Partial``, so that it passes through ``jit``
    as an argument: a model's params are leaves (traced, not baked in as
    constants) and the same function reuses its compiled program."""
    if isinstance(score_fn, jax.tree_util.Partial):
        return score_fn
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable (y, t) -> score, got {score_fn!r}.")
    return jax.tree_util.Partial(score_fn)


def _check_options(num_probes, probe: str, key) -> int | None:
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}.")
    if num_probes is None:
        return None
    num_probes = checks.positive_int(num_probes, "num_probes")
    if key is None:
        raise ValueError(
            "Hutchinson FLIPD (num_probes given) needs a PRNG key for its probes; "
            "pass key=jax.random.key(0), or num_probes=None for the exact trace."
        )
    return num_probes


def _check_x(x: Array, batched: bool) -> Array:
    x = jnp.asarray(x)
    need = 2 if batched else 1
    if x.ndim < need or x.size == 0 or not jnp.issubdtype(x.dtype, jnp.floating):
        what = "a batch (N, ...) of examples" if batched else "one example"
        raise ValueError(
            f"x must be {what}, floating point, non-empty; got shape "
            f"{tuple(x.shape)} and dtype {x.dtype}."
        )
    checks.finite(x, "x", "FLIPD is defined at finite data points only.")
    return x


def _check_t0(t0: Array) -> Array:
    t0 = jnp.asarray(t0, jnp.float32)
    checks.check(
        jnp.all((t0 > 0.0) & (t0 <= 1.0)),
        "t0 must lie in (0, 1] (the diffusion time), got {t0}.",
        t0=t0,
    )
    return t0


def _flipd(score_fn, x, t0, probe_vectors, *, sde: VPSDE, chunk_size: int) -> Array:
    y = sde.alpha(t0) * x
    s, trace = value_and_divergence(
        lambda v: score_fn(v, t0), y, probe_vectors, chunk_size=chunk_size
    )
    return x.size + sde.sigma(t0) ** 2 * (trace + jnp.sum(s**2))


def flipd(
    score_fn: ScoreFn,
    x: Array,
    t0: float | Array,
    key: PRNGKey | None = None,
    *,
    sde: VPSDE,
    num_probes: int | None = None,
    probe: str = "rademacher",
    chunk_size: int = 128,
) -> Array:
    """FLIPD of ONE example ``x`` (any shape) at diffusion time ``t0``.

    Args:
        score_fn: ``(y, t) -> ∇_y log p_t(y)`` for one example ``y`` of the shape of
            ``x`` and a scalar ``t``: the score itself, not σ-scaled. Any pure
            function (e.g. :func:`jaxood.diffusion.score_function`, or an analytic
            score).
        x: one data point, in the space the model was trained on (diffusion space
            [−1, 1] for jaxood's models).
        t0: diffusion time in (0, 1].
        key: PRNG key for the Hutchinson probes (needed when ``num_probes`` is set).
        sde: the VP-SDE of the model, ``VPSDE(beta_min, beta_max)``.
        num_probes: None for the exact trace (D JVPs in chunks), else the number of
            Hutchinson probes (the authors' default is 128 Gaussian probes; 1 is
            enough at small t0 by their analysis).
        probe: ``"rademacher"`` or ``"gaussian"``.
        chunk_size: JVPs per chunk of the exact trace.

    Returns:
        A float32 scalar in units of dimensions: ≈ D at t0 → 0, the LID on the
        plateau, ≈ 0 at t0 → 1.

    Raises:
        ValueError: bad shapes, options, or a missing key.
        InputError: NaN in ``x``, or ``t0`` outside (0, 1] (traceable checks).
    """
    num_probes = _check_options(num_probes, probe, key)
    x, t0 = _check_x(x, batched=False), _check_t0(t0)
    vectors = None if num_probes is None else probes(key, num_probes, x.shape, probe)
    return _flipd(score_fn, x, t0, vectors, sde=sde, chunk_size=chunk_size)


@functools.partial(
    jax.jit, static_argnames=("sde", "num_probes", "probe", "chunk_size")
)
def _sweep(score_fn, xs, t0s, key, *, sde, num_probes, probe, chunk_size):
    def one(i, x):
        vectors = None
        if num_probes is not None:  # the same probes at every t0 of this example
            vectors = probes(jax.random.fold_in(key, i), num_probes, x.shape, probe)
        at = functools.partial(_flipd, score_fn, x, sde=sde, chunk_size=chunk_size)
        return jax.vmap(lambda t: at(t, vectors))(t0s)

    return jax.vmap(one)(parallel.like_batch(jnp.arange(xs.shape[0]), xs), xs)


def flipd_sweep(
    score_fn: ScoreFn,
    xs: Array,
    t0s: Array,
    key: PRNGKey | None = None,
    *,
    sde: VPSDE,
    num_probes: int | None = None,
    probe: str = "rademacher",
    chunk_size: int = 128,
) -> Array:
    """FLIPD of a batch ``xs`` ``(N, ...)`` at every ``t0s`` ``(T,)``: ``(N, T)``.

    One compiled program (``vmap`` over examples and times); the Hutchinson probes of
    an example are ``fold_in(key, i)`` and are shared by its T times, so a curve is
    smooth in t0. Pass the score as a ``jax.tree_util.Partial`` (what
    :func:`jaxood.diffusion.score_function` returns) to reuse the compiled program
    across calls; other callables are wrapped and compiled once per function.
    Arguments as :func:`flipd`; memory grows with N × T × (chunk_size or
    num_probes) × D, so split large sets (``jaxood.batching.map_batches``).
    """
    num_probes = _check_options(num_probes, probe, key)
    xs, t0s = _check_x(xs, batched=True), _check_t0(t0s)
    if t0s.ndim != 1:
        raise ValueError(f"t0s must be one-dimensional (T,), got {t0s.shape}.")
    key = jax.random.key(0) if key is None else key
    return _sweep(
        as_pytree(score_fn),
        xs,
        t0s,
        key,
        sde=sde,
        num_probes=num_probes,
        probe=probe,
        chunk_size=chunk_size,
    )


def knee(t0s: Array, values: Array) -> int:
    """Index of the knee of a monotone curve ``values(t0s)`` (kneedle).

    Both axes are scaled to [0, 1]; the knee is the point farthest from the chord
    joining the first and the last point (Satopää et al.'s difference curve). The
    FLIPD authors pick t0 at the knee of the FLIPD-vs-t0 curve.

    Args:
        t0s: ``(T,)`` increasing times (host values).
        values: ``(T,)`` curve, e.g. the mean FLIPD of a set at each t0.

    Returns:
        The index into ``t0s`` (a Python int).
    """
    x, y = np.asarray(t0s, np.float64), np.asarray(values, np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 3:
        raise ValueError(
            f"knee needs two (T,) arrays with T ≥ 3, got {x.shape} and {y.shape}."
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("knee: t0s and values must be finite.")
    if np.any(np.diff(x) <= 0):
        raise ValueError("knee: t0s must be strictly increasing.")
    xn = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    yn = (y - y.min()) / (span if span > 0 else 1.0)
    # Distance (up to a constant) from the chord (0, yn[0]) -> (1, yn[-1]).
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    return int(np.argmax(np.abs(yn - chord)))
