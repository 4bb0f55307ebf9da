"""Stochastic Lanczos quadrature (SLQ) of a decoder's JᵀJ: every τ and δ from one run.

A Lanczos run of ``m`` steps on the d×d operator ``M = JᵀJ`` (one JVP and one VJP
per step, ``jax.linearize`` + ``jax.linear_transpose``) started at a vector ``v``
gives an m-node Gauss quadrature of the spectral measure ``Σ_i (u_iᵀv)² δ(λ_i)``:
its nodes are the Ritz values θ_k and its weights ``‖v‖² (e₁ᵀ s_k)²`` come from the
eigenvectors ``s_k`` of the tridiagonal matrix. With Rademacher probes
(``‖v‖² = d``) the mean over probes of ``Σ_k w_k f(θ_k)`` estimates ``tr f(M)``
(Hutchinson); started at ``z`` it gives the quadratic form ``zᵀ f(M) z``
(Golub & Meurant). A :class:`Quadrature` is computed once per image and every
estimator reads it:

- threshold LID ``#{σ_i > τ} = tr 1[M > τ²]`` for every τ, with the
  Chebyshev–Markov–Stieltjes bound: a probe's true spectral distribution at τ²
  differs from the quadrature's by at most the weight of a node next to τ², a
  guaranteed quadrature error;
- LIDL ``tr M(M + σ²)⁻¹ + σ² zᵀ M(M + σ²)⁻² z`` for every δ (σ = e^δ).

Lanczos resolves the large eigenvalues of M sharply and lumps the small ones into a
few nodes. A flow's decoder has an exact inverse (the encoder), whose JᵀJ is
``M⁻¹``: a second run on it resolves the small end. With both, each τ or δ is read
from the side with the smaller error indicator (a jaxood design; the one-sided
method is Ubaru et al.'s).

Error indicators: for counts, the quadrature bracket plus three standard errors of
the probe mean; for LIDL, the change of the estimate between the first ``m // 2``
and all ``m`` steps plus three standard errors of the probes' trace estimates.

References: Ubaru, Chen & Saad, "Fast Estimation of tr(f(A)) via Stochastic Lanczos
Quadrature", SIAM J. Matrix Anal. Appl. 2017; Golub & Meurant, "Matrices, Moments
and Quadrature with Applications", 2010; Tempczyk et al., "LIDL", ICML 2022; Kamkari
et al., "A Geometric Explanation of the Likelihood OOD Detection Paradox", ICML 2024.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.typing import Array, PRNGKey

# Standard errors of the probe mean added to the error indicators.
PROBE_SIGMAS = 3.0
# Rounding of the Ritz values, in units of ε × the largest node of the run.
ROUNDING_EPS = 4.0


class Quadrature(NamedTuple):
    """Gauss quadratures of one operator from several Lanczos runs.

    Row ``r`` estimates ``vᵣᵀ f(M) vᵣ ≈ Σ_k weights[r, k] f(nodes[r, k])``; the
    ``coarse_*`` fields are the same from the first ``m // 2`` steps (for the
    error indicator of smooth functions). Rows ``[:-1]`` are Rademacher probes,
    the last row is the run started at z. Nodes ascend along the last axis.
    """

    nodes: Array  # (..., P + 1, m)
    weights: Array  # (..., P + 1, m)
    coarse_nodes: Array  # (..., P + 1, m // 2)
    coarse_weights: Array  # (..., P + 1, m // 2)


class SpectralQuadrature(NamedTuple):
    """What the SLQ estimators read: JᵀJ's quadrature and, for flows, (JᵀJ)⁻¹'s."""

    gram: Quadrature
    inverse: Quadrature | None


class SLQEstimate(NamedTuple):
    """An SLQ estimate and its error indicator, same shape."""

    value: Array
    error: Array


# ------------------------------------------------------------------ Lanczos


def _gauss_rule(alphas: Array, betas: Array):
    """Eigenvalues (ascending) and first eigenvector components of a Lanczos
    tridiagonal: the nodes, and the square roots of the weights over ‖start‖²."""
    tridiagonal = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    nodes, vectors = jnp.linalg.eigh(tridiagonal)
    return nodes, vectors[0]


def _lanczos(
    matvec: Callable[[Array], Array],
    start: Array,
    num_steps: int,
    reorthogonalize: bool,
    unroll: int | bool,
):
    """``num_steps`` Lanczos steps from ``start``: (alphas, betas), each (m,).

    After a breakdown (an invariant subspace found: β ≈ 0) the basis vector is 0,
    so the remaining steps add nodes of weight exactly 0.
    """
    dim = start.shape[0]
    eps = jnp.finfo(start.dtype).eps
    q0 = start / jnp.linalg.norm(start)
    basis0 = jnp.zeros((num_steps if reorthogonalize else 1, dim), start.dtype)

    def step(carry, k):
        basis, q, q_prev, beta_prev, scale = carry
        w = matvec(q) - beta_prev * q_prev
        alpha = jnp.vdot(q, w)
        w = w - alpha * q
        if reorthogonalize:
            basis = basis.at[k].set(q)
            # Twice is enough (Kahan–Parlett): keeps the basis orthogonal to
            # working precision, without which Ritz values repeat.
            w = w - basis.T @ (basis @ w)
            w = w - basis.T @ (basis @ w)
        beta = jnp.linalg.norm(w)
        scale = jnp.maximum(scale, jnp.abs(alpha) + beta_prev)
        alive = beta > 64 * eps * scale
        beta = jnp.where(alive, beta, 0.0)
        q_next = jnp.where(alive, w / jnp.where(alive, beta, 1.0), 0.0)
        return (basis, q_next, q, beta, scale), (alpha, beta)

    zero = jnp.zeros((), start.dtype)
    init = (basis0, q0, jnp.zeros_like(q0), zero, zero)
    _, (alphas, betas) = jax.lax.scan(step, init, jnp.arange(num_steps), unroll=unroll)
    return alphas, betas


def _lanczos_runs(matvec, starts: Array, num_steps: int, reorthogonalize, unroll):
    """Lanczos from every start (vmapped): ``(alphas, betas)``, each (R, m)."""
    return jax.vmap(lambda v: _lanczos(matvec, v, num_steps, reorthogonalize, unroll))(
        starts
    )


def _quadratures(runs, starts: Array) -> list[Quadrature]:
    """The Gauss rules (m steps and the first m // 2) of each ``(alphas, betas)``.

    Every tridiagonal goes into ONE batched eigen-solve. XLA:CPU runs independent
    operations at once, and a batched LAPACK eigh splits its batch over the
    intra-op thread pool it runs on, then waits for the parts: two such calls at
    once on a 2-thread pool wait for each other forever (the test suite hung in
    ``lapack_ssyevd_ffi``; ordering them with ``lax.optimization_barrier`` did not
    help, XLA drops the barrier before it schedules). The m // 2-step rules are
    padded to m with a decoupled diagonal below their Gershgorin bound, so the
    padding's eigenvalues come first and are sliced off (their eigenvectors are 0
    on the first coordinate).
    """
    m = runs[0][0].shape[-1]
    half = max(m // 2, 1)
    alphas, betas = [], []
    for a, b in runs:
        # Below the Gershgorin bound of the m // 2 block, by more than its scale.
        off = jnp.abs(b[..., : half - 1])
        radius = jnp.pad(off, [(0, 0), (0, 1)]) + jnp.pad(off, [(0, 0), (1, 0)])
        lower = jnp.min(a[..., :half] - radius, axis=-1, keepdims=True)
        scale = jnp.max(jnp.abs(a[..., :half]) + radius, axis=-1, keepdims=True)
        pad = jnp.broadcast_to(lower - scale - 1.0, (*a.shape[:-1], m - half))
        alphas += [a, jnp.concatenate([a[..., :half], pad], axis=-1)]
        zeros = jnp.zeros((*b.shape[:-1], m - half + 1), b.dtype)
        betas += [b, jnp.concatenate([b[..., : half - 1], zeros], axis=-1)]
    rows = starts.shape[0]
    nodes, first = jax.vmap(_gauss_rule)(
        jnp.concatenate(alphas), jnp.concatenate(betas)
    )
    norm_sq = jnp.sum(starts**2, axis=-1)[:, None]
    rules = []
    for i in range(len(alphas)):
        keep = slice(None) if i % 2 == 0 else slice(m - half, None)
        n, v = nodes[i * rows : (i + 1) * rows, keep], first[i * rows : (i + 1) * rows]
        # M is positive semi-definite: negative Ritz values are rounding.
        rules.append((jnp.maximum(n, 0.0), norm_sq * v[:, keep] ** 2))
    return [Quadrature(*rules[i], *rules[i + 1]) for i in range(0, len(rules), 2)]


def _gram_matvec(fn: Callable[[Array], Array], at: Array):
    """``v -> JᵀJ v`` of flat ``fn`` at ``at``: one JVP, one VJP."""
    _, jvp = jax.linearize(fn, at)
    vjp = jax.linear_transpose(jvp, at)
    return lambda v: vjp(jvp(v))[0]


def _inverse_gram_matvec(inverse_fn: Callable[[Array], Array], x0: Array):
    """``v -> J⁻¹J⁻ᵀ v = (JᵀJ)⁻¹ v`` from the encoder's Jacobian E = J⁻¹ at x0."""
    _, jvp = jax.linearize(inverse_fn, x0)
    vjp = jax.linear_transpose(jvp, x0)
    return lambda v: jvp(vjp(v)[0])


_STATIC = ("fn", "inverse_fn", "num_probes", "num_steps", "reorthogonalize", "unroll")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _slq(fn, z, key, *, inverse_fn, num_probes, num_steps, reorthogonalize, unroll):
    shape = z.shape
    flat = lambda v: jnp.ravel(fn(v.reshape(shape)))  # noqa: E731
    z_flat = z.ravel()
    probes = jax.random.rademacher(key, (num_probes, z.size), dtype=z.dtype)
    # The run started at z carries the quadratic form of LIDL; a z of zeros would
    # stop Lanczos at once, so it starts at a probe instead and has weight 0.
    z_norm = jnp.linalg.norm(z_flat)
    at_z = jnp.where(z_norm > 0, z_flat, probes[0])
    starts = jnp.concatenate([probes, at_z[None]])
    run = functools.partial(
        _lanczos_runs,
        starts=starts,
        num_steps=num_steps,
        reorthogonalize=reorthogonalize,
        unroll=unroll,
    )
    runs = [run(_gram_matvec(flat, z_flat))]
    if inverse_fn is not None:
        x0 = flat(z_flat)
        image_shape = jax.eval_shape(fn, z).shape
        inverse_flat = lambda x: jnp.ravel(inverse_fn(x.reshape(image_shape)))  # noqa: E731
        runs.append(run(_inverse_gram_matvec(inverse_flat, x0)))
    gram, *inverse = [
        _zero_last_row_if(q, z_norm == 0) for q in _quadratures(runs, starts)
    ]
    return SpectralQuadrature(gram, inverse[0] if inverse else None)


def _zero_last_row_if(q: Quadrature, condition: Array) -> Quadrature:
    def fix(w):
        return w.at[-1].multiply(jnp.where(condition, 0.0, 1.0))

    return q._replace(weights=fix(q.weights), coarse_weights=fix(q.coarse_weights))


def check_counts(
    num_probes: int, num_steps: int, unroll: int | bool, num_dims: int
) -> tuple[int, int]:
    """Static checks of the SLQ counts for a d = ``num_dims`` latent; the counts."""
    num_probes = checks.positive_int(num_probes, "num_probes")
    num_steps = checks.positive_int(num_steps, "num_steps")
    if num_steps > num_dims:
        raise ValueError(
            f"num_steps is {num_steps} but the latent has d = {num_dims} values: "
            f"Lanczos on a d×d operator ends after d steps (it is then exact); "
            f"pass num_steps ≤ {num_dims}."
        )
    if not isinstance(unroll, bool | int):
        raise TypeError(f"unroll must be an int or a bool, got {unroll!r}.")
    return num_probes, num_steps


def slq(
    fn: Callable[[Array], Array],
    z: Array,
    key: PRNGKey,
    *,
    num_probes: int = 8,
    num_steps: int = 40,
    inverse_fn: Callable[[Array], Array] | None = None,
    reorthogonalize: bool = True,
    unroll: int | bool = 1,
) -> SpectralQuadrature:
    """Lanczos quadratures of ``JᵀJ`` (and of its inverse) for decoder ``fn`` at z.

    Cost: ``(num_probes + 1) × num_steps`` JVPs and as many VJPs, vmapped over the
    probes (per side); memory ``(num_probes + 1) × num_steps × d`` with
    re-orthogonalisation. Jitted with ``fn``, ``inverse_fn`` and the counts static:
    reuse the same function objects to reuse the compiled program. Batch over
    images with ``jax.vmap`` or ``jax.lax.map`` over ``z`` and ``key``.

    Args:
        fn: decoder ``z -> x`` for one latent point (any shapes).
        z: the latent point, floating point (z0 = f⁻¹(x) for a flow).
        key: PRNG key of the Rademacher probes.
        num_probes: Hutchinson probes P (error of traces ~ 1/√P).
        num_steps: Lanczos steps m per run, at most d = z.size.
        inverse_fn: for an invertible decoder (a flow), its inverse ``x -> z``;
            adds the quadrature of ``(JᵀJ)⁻¹``, which resolves small singular
            values that a run on JᵀJ lumps together.
        reorthogonalize: full re-orthogonalisation (recommended; without it Ritz
            values repeat in float32 and weights spread over the copies).
        unroll: ``lax.scan`` unroll of the Lanczos steps: an int, or True for
            straight-line code (slower to compile; XLA:CPU runs loops of
            convolutions slower than straight-line code).

    Returns:
        A :class:`SpectralQuadrature` for :func:`threshold_lid_from` and
        :func:`lidl_from`.
    """
    z = jnp.asarray(z)
    if z.size == 0 or not jnp.issubdtype(z.dtype, jnp.floating):
        raise ValueError(
            f"z must be a non-empty floating-point latent point, got shape "
            f"{tuple(z.shape)} and dtype {z.dtype}."
        )
    num_probes, num_steps = check_counts(num_probes, num_steps, unroll, z.size)
    checks.finite(z, "z", "The decoder cannot be linearised there.")
    return _slq(
        fn,
        z,
        key,
        inverse_fn=inverse_fn,
        num_probes=num_probes,
        num_steps=num_steps,
        reorthogonalize=bool(reorthogonalize),
        unroll=unroll,
    )


# ------------------------------------------------------------------ estimators


def _mass_below(nodes: Array, weights: Array, t: Array):
    """Quadrature mass below each ``t`` and its guaranteed error.

    nodes, weights ``(R, m)`` (ascending nodes), t ``(T,)`` → two ``(T, R)``.
    The true measure below t lies in ``[mass(θ < t) − w_left, mass(θ < t) +
    w_right]`` with w_left, w_right the weights of the nodes just below and at or
    above t (Chebyshev–Markov–Stieltjes), so the error is at most the larger.
    The estimate is the plain quadrature mass, not the bracket's midpoint: a
    converged node (one eigenvalue, or an invariant subspace after a breakdown)
    carries exact mass that the midpoint would split.
    """
    below = nodes[None] < t[:, None, None]  # (T, R, m)
    mass = jnp.sum(jnp.where(below, weights[None], 0.0), axis=-1)
    index = jnp.sum(below, axis=-1)  # nodes below t
    padded = jnp.pad(weights, ((0, 0), (1, 1)))  # (R, m + 2)
    take = jax.vmap(lambda i: jnp.take_along_axis(padded, i[:, None], axis=1)[:, 0])
    w_left, w_right = take(index), take(index + 1)
    return mass, jnp.maximum(w_left, w_right)


def _probe_mean(per_probe: Array, bound: Array) -> SLQEstimate:
    """Mean over probes (last axis) with bound + PROBE_SIGMAS standard errors."""
    num_probes = per_probe.shape[-1]
    mean = jnp.mean(per_probe, axis=-1)
    if num_probes == 1:
        spread = jnp.full_like(mean, jnp.inf)  # one probe: no spread to measure
    else:
        spread = jnp.std(per_probe, axis=-1, ddof=1) / jnp.sqrt(num_probes)
    return SLQEstimate(mean, jnp.mean(bound, axis=-1) + PROBE_SIGMAS * spread)


def _pick(a: SLQEstimate, b: SLQEstimate | None) -> SLQEstimate:
    """Per entry, the estimate with the smaller error indicator."""
    if b is None:
        return a
    use_b = b.error < a.error
    return SLQEstimate(
        jnp.where(use_b, b.value, a.value), jnp.where(use_b, b.error, a.error)
    )


def _check_quadrature(q: SpectralQuadrature, name: str, grid: Array) -> Array:
    if not isinstance(q, SpectralQuadrature):
        raise TypeError(
            f"quadrature must be a jaxood.lid.SpectralQuadrature from lid.slq, got "
            f"{type(q).__name__}."
        )
    if q.gram.nodes.ndim != 2:
        raise ValueError(
            f"quadrature holds nodes of shape {tuple(q.gram.nodes.shape)}: the "
            "estimators read one point's quadrature; for a batch use jax.vmap."
        )
    grid = jnp.asarray(grid, q.gram.nodes.dtype)
    if grid.ndim != 1:
        raise ValueError(
            f"{name} must be a (T,) array, got shape {tuple(grid.shape)}; wrap one "
            "value as jnp.array([value])."
        )
    checks.finite(grid, name)
    return grid


def threshold_lid_from(quadrature: SpectralQuadrature, log_taus: Array) -> SLQEstimate:
    """``#{σ_i > τ}`` for every ``ℓ = log τ`` from one :func:`slq` quadrature.

    Args:
        quadrature: of one point.
        log_taus: ``(T,)`` thresholds ℓ = log τ.

    Returns:
        :class:`SLQEstimate` of ``(T,)`` float counts and their error indicators.
    """
    log_taus = _check_quadrature(quadrature, "log_taus", log_taus)
    gram, inverse = quadrature
    probes = slice(0, -1)
    dim = jnp.sum(gram.weights[0])  # ‖v‖² = d for a Rademacher probe
    # σ > τ  ⇔  λ > τ²  ⇔  1/λ < 1/τ²  (in logs, to keep e^{±2ℓ} finite).
    t = jnp.exp(2.0 * log_taus)
    below, bound = _mass_below(gram.nodes[probes], gram.weights[probes], t)
    upper = _probe_mean(dim - below, bound)
    if inverse is None:
        return upper
    below, bound = _mass_below(inverse.nodes[probes], inverse.weights[probes], 1 / t)
    return _pick(upper, _probe_mean(below, bound))


def _lidl_side(q: Quadrature, var: Array, inverted: bool) -> SLQEstimate:
    """LIDL at each variance from one operator's quadrature (``(S,)`` estimates)."""

    def parts(nodes, weights):
        if inverted:  # nodes are μ = 1/λ: rewrite both functions in μ
            trace_f = 1.0 / (1.0 + var[:, None, None] * nodes[None])
            quad_f = nodes[None] / (1.0 + var[:, None, None] * nodes[None]) ** 2
        else:
            denominator = nodes[None] + var[:, None, None]
            trace_f = nodes[None] / denominator
            quad_f = nodes[None] / denominator**2
        trace = jnp.sum(weights[None, :-1] * trace_f[:, :-1], axis=-1)  # (S, P)
        quadratic = jnp.sum(weights[None, -1] * quad_f[:, -1], axis=-1)  # (S,)
        return trace + (var * quadratic)[:, None]  # (S, P)

    fine = parts(q.nodes, q.weights)
    coarse = parts(q.coarse_nodes, q.coarse_weights)
    # Ritz values are only known to about ε·(largest node) in float32: where σ² is
    # that small the estimate moves by up to the change below (seen: 25 % at
    # σ² ≈ ε·λ_max when XLA merely reordered its float32 sums).
    shift = ROUNDING_EPS * jnp.finfo(q.nodes.dtype).eps
    shift = shift * jnp.max(q.nodes, axis=-1, keepdims=True)
    rounding = jnp.maximum(
        jnp.abs(parts(q.nodes + shift, q.weights) - fine),
        jnp.abs(parts(jnp.maximum(q.nodes - shift, 0.0), q.weights) - fine),
    )
    return _probe_mean(fine, jnp.abs(fine - coarse) + rounding)


def lidl_from(quadrature: SpectralQuadrature, deltas: Array) -> SLQEstimate:
    """LIDL ``Σ λ/(λ+σ²) + σ² Σ λ z̃²/(λ+σ²)²`` for every δ = log σ, from one
    :func:`slq` quadrature (the same formula as :func:`jaxood.lid.lidl`).

    With both sides, each δ is read from the run on JᵀJ when σ² is nearer
    λ_max than λ_min in ratio (σ²/λ_max ≥ λ_min/σ², Lanczos resolving a scale
    relative to the largest eigenvalue of its operator), else from the run on
    (JᵀJ)⁻¹; λ_max and λ_min are the extreme Ritz values, accurate after a few
    steps.

    Args:
        quadrature: of one point, from :func:`slq` at that point's z.
        deltas: ``(S,)`` log standard deviations δ.

    Returns:
        :class:`SLQEstimate` of ``(S,)`` LID values and their error indicators.
    """
    deltas = _check_quadrature(quadrature, "deltas", deltas)
    var = jnp.exp(2.0 * deltas)
    upper = _lidl_side(quadrature.gram, var, inverted=False)
    if quadrature.inverse is None:
        return upper
    lower = _lidl_side(quadrature.inverse, var, inverted=True)
    lam_max = jnp.max(quadrature.gram.nodes)
    lam_min = 1.0 / jnp.max(quadrature.inverse.nodes)
    use_upper = var * var >= lam_max * lam_min
    return SLQEstimate(
        jnp.where(use_upper, upper.value, lower.value),
        jnp.where(use_upper, upper.error, lower.error),
    )


def slq_threshold_lid(
    fn: Callable[[Array], Array],
    z: Array,
    log_taus: Array,
    key: PRNGKey,
    *,
    num_probes: int = 8,
    num_steps: int = 40,
    **kwargs,
) -> SLQEstimate:
    """Threshold LID ``#{σ_i(J) > τ}`` of decoder ``fn`` at z for every ℓ = log τ.

    One :func:`slq` run serves the whole grid; ``kwargs`` go to :func:`slq`
    (``inverse_fn``, ``reorthogonalize``, ``unroll``).

    Returns:
        :class:`SLQEstimate`, ``(T,)`` counts and error indicators.
    """
    q = slq(fn, z, key, num_probes=num_probes, num_steps=num_steps, **kwargs)
    return threshold_lid_from(q, log_taus)


def slq_lidl(
    fn: Callable[[Array], Array],
    z: Array,
    deltas: Array,
    key: PRNGKey,
    *,
    num_probes: int = 8,
    num_steps: int = 40,
    **kwargs,
) -> SLQEstimate:
    """LIDL of decoder ``fn`` at z for every δ from one :func:`slq` run.

    Returns:
        :class:`SLQEstimate`, ``(S,)`` LID values and error indicators.
    """
    q = slq(fn, z, key, num_probes=num_probes, num_steps=num_steps, **kwargs)
    return lidl_from(q, deltas)
