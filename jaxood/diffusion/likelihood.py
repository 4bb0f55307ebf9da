"""Log-likelihood of a diffusion model through its probability-flow ODE.

The VP-SDE's marginals p_t are also those of the deterministic flow

    dy/dt = f(y, t) = −½ β(t) (y + s(y, t)),

so log p_{t_min}(y) = log N(y_1; 0, I) + ∫_{t_min}^{1} tr ∂f/∂y (y_t, t) dt along the
path from y_{t_min} = y (the instantaneous change of variables). The ODE and the
divergence integral are solved together by an adaptive Runge–Kutta solver (diffrax:
Tsit5 or Dopri5 with a PID step-size controller, tolerances 1e-5 as Song et al.);
tr ∂f/∂y = −½ β(t) (D + tr ∂s/∂y) uses the exact trace or Hutchinson's estimator with
probes drawn once per example and kept for the whole path.

Units: :func:`ode_log_prob` returns nats of the density of y (whatever space the
score is in); :func:`bits_per_dim` turns jaxood's diffusion space y ∈ [−1, 1]
(``jaxood.diffusion.to_diffusion_space``) into bits/dim of 8-bit images as for the
flows: log p_model-space = log p(y) + D log 2, then + log2(256) per dimension for
the bin width.

References: Song et al., "Score-Based Generative Modeling through Stochastic
Differential Equations", ICLR 2021 (section 4.3, appendix D.2); Chen et al., "Neural
Ordinary Differential Equations", NeurIPS 2018; Grathwohl et al., "FFJORD", ICLR 2019.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp

from jaxood import checks, parallel
from jaxood.data.preprocess import bits_per_dim as model_space_bits_per_dim
from jaxood.diffusion.divergence import PROBES, probes, value_and_divergence
from jaxood.diffusion.flipd import ScoreFn, as_pytree
from jaxood.diffusion.sde import VPSDE
from jaxood.typing import Array, PRNGKey

SOLVERS = {
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "heun": diffrax.Heun,
    "euler": diffrax.Euler,
}
ADAPTIVE = ("tsit5", "dopri5")


class ODELogProb(NamedTuple):
    """One example's probability-flow likelihood (batched under ``vmap``)."""

    log_prob: Array  # log p_{t_min}(y), nats
    prior: Array  # log N(y_1; 0, I), nats
    num_steps: Array  # accepted solver steps (each 6 or 7 field evaluations)


def _options(solver, probe, t_min, rtol, atol, chunk_size, max_steps) -> dict:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}.")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}.")
    if not 0.0 < t_min < 1.0:
        raise ValueError(f"t_min must lie in (0, 1), got {t_min}.")
    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be positive, got {rtol}, {atol}.")
    return dict(
        t_min=float(t_min),
        rtol=float(rtol),
        atol=float(atol),
        solver=solver,
        chunk_size=checks.positive_int(chunk_size, "chunk_size"),
        max_steps=checks.positive_int(max_steps, "max_steps"),
    )


def _num_probes(num_probes, key) -> int | None:
    if num_probes is None:
        return None
    if key is None:
        raise ValueError(
            "Hutchinson divergence (num_probes given) needs a PRNG key; pass "
            "key=..., or num_probes=None for the exact trace."
        )
    return checks.positive_int(num_probes, "num_probes")


def _solve(score_fn, y, vectors, *, sde, t_min, rtol, atol, solver, chunk_size,
           max_steps, num_steps):  # fmt: skip
    def velocity(t, state, args):
        y_t, _ = state
        s, trace = value_and_divergence(
            lambda v: score_fn(v, t), y_t, vectors, chunk_size=chunk_size
        )
        beta = sde.beta(t)
        return sde.ode_drift(y_t, s, t), -0.5 * beta * (y_t.size + trace)

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(velocity),
        SOLVERS[solver](),
        t0=t_min,
        t1=1.0,
        dt0=None if num_steps is None else (1.0 - t_min) / num_steps,
        y0=(y, jnp.zeros((), y.dtype)),
        stepsize_controller=diffrax.ConstantStepSize()
        if num_steps is not None
        else diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    y_1, integral = solution.ys[0][-1], solution.ys[1][-1]
    prior = sde.prior_log_prob(y_1)
    return ODELogProb(prior + integral, prior, solution.stats["num_accepted_steps"])


@functools.partial(
    jax.jit,
    static_argnames=(
        "sde", "t_min", "num_probes", "probe", "rtol", "atol", "solver",
        "chunk_size", "max_steps", "num_steps",
    ),
)  # fmt: skip
def _batch(score_fn, ys, key, *, num_probes, probe, **options):
    def solve(batch, score_fn, key):
        def one(i, y):
            vectors = None
            if num_probes is not None:
                vectors = probes(jax.random.fold_in(key, i), num_probes, y.shape, probe)
            return _solve(score_fn, y, vectors, **options)

        return jax.vmap(one)(*batch)

    # On a mesh each device solves its own examples; example i keeps its probes.
    return parallel.per_shard(solve, (jnp.arange(ys.shape[0]), ys), score_fn, key)


def ode_log_prob_batch(
    score_fn: ScoreFn,
    ys: Array,
    key: PRNGKey | None = None,
    *,
    sde: VPSDE,
    t_min: float = 1e-5,
    num_probes: int | None = 1,
    probe: str = "rademacher",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    solver: str = "tsit5",
    chunk_size: int = 128,
    max_steps: int = 4096,
    num_steps: int | None = None,
) -> ODELogProb:
    """log p_{t_min}(y) of a batch ``ys`` ``(N, ...)`` through the probability-flow
    ODE, in one compiled program.

    Args:
        score_fn: ``(y, t) -> ∇ log p_t(y)`` for ONE example (see
            :func:`jaxood.diffusion.flipd`); a ``jax.tree_util.Partial`` (what
            :func:`jaxood.diffusion.score_function` returns) reuses the compiled
            program across calls.
        ys: a batch of examples, floating point.
        key: PRNG key of the Hutchinson probes (needed unless ``num_probes`` is
            None); example i uses ``fold_in(key, i)``.
        sde: the model's VP-SDE.
        t_min: the time the likelihood is taken at (the model's training t_min).
        num_probes: Hutchinson probes, fixed along the path (Song et al.: 1
            Rademacher probe); None for the exact trace (D JVPs per evaluation:
            only for small D).
        probe: ``"rademacher"`` or ``"gaussian"``.
        rtol, atol: the step-size controller's tolerances (adaptive solvers).
        solver: ``"tsit5"`` or ``"dopri5"`` (adaptive, or fixed steps with
            ``num_steps``), ``"heun"`` or ``"euler"`` (fixed steps only).
        chunk_size: JVPs per chunk of the exact trace.
        max_steps: the solver gives up (an error) after this many steps.
        num_steps: None (adaptive steps) or a number of equal steps in t.

    Returns:
        :class:`ODELogProb` with ``(N,)`` fields; nats of the density of y. The
        examples step together (under ``vmap`` each keeps its own step size, but
        the loop runs until the slowest is done), so batch similar examples.
    """
    options = _options(solver, probe, t_min, rtol, atol, chunk_size, max_steps)
    if num_steps is not None:
        options["num_steps"] = checks.positive_int(num_steps, "num_steps")
    elif solver not in ADAPTIVE:
        raise ValueError(f"solver {solver!r} has fixed steps: give num_steps.")
    else:
        options["num_steps"] = None
    num_probes = _num_probes(num_probes, key)
    ys = jnp.asarray(ys)
    if ys.ndim < 2 or ys.size == 0 or not jnp.issubdtype(ys.dtype, jnp.floating):
        raise ValueError(
            f"ys must be a non-empty floating-point batch (N, ...), got shape "
            f"{tuple(ys.shape)} and dtype {ys.dtype}; one example goes to "
            "ode_log_prob."
        )
    checks.finite(ys, "ys", "The likelihood is defined at finite points only.")
    key = jax.random.key(0) if key is None else key  # unused: exact trace
    with parallel.outside_mesh_context(ys):
        return _batch(
            as_pytree(score_fn),
            ys,
            key,
            sde=sde,
            num_probes=num_probes,
            probe=probe,
            **options,
        )


def ode_log_prob(score_fn: ScoreFn, y: Array, key: PRNGKey | None = None, **options):
    """:func:`ode_log_prob_batch` of ONE example ``y`` (any shape): an
    :class:`ODELogProb` of scalars. Its probes are those of example 0 of a batch,
    ``fold_in(key, 0)``; the options are those of :func:`ode_log_prob_batch`."""
    y = jnp.asarray(y)
    if y.ndim == 0:
        raise ValueError("y must be one example with at least one axis, got a scalar.")
    out = ode_log_prob_batch(score_fn, y[None], key, **options)
    return jax.tree.map(lambda a: a[0], out)


@functools.partial(
    jax.jit, static_argnames=("shape", "sde", "t_min", "rtol", "atol", "max_steps")
)
def _sample(score_fn, key, *, shape, sde, t_min, rtol, atol, max_steps):
    def velocity(t, y, args):
        return sde.ode_drift(y, score_fn(y, t), t)

    def one(k):
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(velocity),
            diffrax.Tsit5(),
            t0=1.0,
            t1=t_min,
            dt0=None,
            y0=jax.random.normal(k, shape),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )
        return solution.ys[-1]

    return jax.vmap(one)(key)


def ode_sample(
    score_fn: ScoreFn,
    key: PRNGKey,
    shape: tuple[int, ...],
    num: int,
    *,
    sde: VPSDE,
    t_min: float = 1e-5,
    rtol: float = 1e-3,
    atol: float = 1e-3,
    max_steps: int = 4096,
) -> Array:
    """``num`` samples of shape ``shape``: N(0, I) at t = 1 carried back to t_min
    along the probability-flow ODE (deterministic given the key)."""
    options = _options("tsit5", "rademacher", t_min, rtol, atol, 1, max_steps)
    del options["solver"], options["chunk_size"]
    keys = jax.random.split(key, checks.positive_int(num, "num"))
    return _sample(as_pytree(score_fn), keys, shape=tuple(shape), sde=sde, **options)


def bits_per_dim(log_prob_y: Array, num_dims: int) -> Array:
    """Bits/dim of 8-bit images from log p(y) in nats, y in diffusion space [−1, 1]."""
    return model_space_bits_per_dim(-(log_prob_y + num_dims * math.log(2.0)), num_dims)
