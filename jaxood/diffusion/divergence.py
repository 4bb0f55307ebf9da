"""The divergence tr(∂f/∂y) of a vector field, exactly or by Hutchinson's estimator.

Both FLIPD (the trace of the score's Jacobian) and the probability-flow likelihood
(the divergence of the ODE's velocity) need it for one example y of any shape and a
field ``fn: y -> f(y)`` of the same shape:

- exact: ``jax.linearize`` evaluates ``fn`` once, then its JVP runs on chunks of
  ``chunk_size`` standard basis vectors (``lax.map`` over chunks, memory ~ chunk × D)
  and the diagonal entries are summed: D JVPs, no D×D matrix;
- Hutchinson: the mean of vᵀ (∂f/∂y) v over fixed probes v with E[v vᵀ] = I, one
  JVP each (Rademacher probes have the smaller variance, Σ_{i≠j} (J_ij² + J_ij J_ji)
  over the pairs, against that plus 2 Σ_i J_ii² for Gaussian ones).

References: Hutchinson, "A stochastic estimator of the trace of the influence matrix
for Laplacian smoothing splines", Comm. Stat. Simul. Comput. 1990; Grathwohl et al.,
"FFJORD", ICLR 2019 (Hutchinson's estimator inside the ODE).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.typing import Array, PRNGKey

PROBES = ("rademacher", "gaussian")


def probes(key: PRNGKey, num: int, shape: tuple[int, ...], kind: str = "rademacher"):
    """``(num, *shape)`` probe vectors with E[v vᵀ] = I, float32."""
    num = checks.positive_int(num, "num_probes")
    if kind == "rademacher":
        return jax.random.rademacher(key, (num, *shape), jnp.float32)
    if kind == "gaussian":
        return jax.random.normal(key, (num, *shape), jnp.float32)
    raise ValueError(f"probe must be one of {PROBES}, got {kind!r}.")


def value_and_divergence(
    fn: Callable[[Array], Array],
    y: Array,
    probe_vectors: Array | None = None,
    *,
    chunk_size: int = 128,
) -> tuple[Array, Array]:
    """``(fn(y), tr ∂fn/∂y)`` at one point ``y``.

    Args:
        fn: a field mapping ``y`` to an array of the same shape.
        y: one example, floating point, any shape (D = y.size values).
        probe_vectors: ``(K, *y.shape)`` fixed Hutchinson probes (see
            :func:`probes`); None for the exact trace from D JVPs.
        chunk_size: basis vectors per JVP chunk of the exact trace (clamped to D).

    Returns:
        The field's value and its divergence (a scalar): exact, or the mean of
        vᵀ J v over the probes.
    """
    flat_shape = (y.size,)
    value, jvp = jax.linearize(lambda v: fn(v.reshape(y.shape)).ravel(), y.ravel())
    if value.shape != flat_shape:
        raise ValueError(
            f"fn must return an array of the shape of y {tuple(y.shape)}, got "
            f"{value.size} values."
        )
    if probe_vectors is not None:
        v = probe_vectors.reshape(-1, y.size).astype(value.dtype)
        trace = jnp.mean(jnp.sum(v * jax.vmap(jvp)(v), axis=-1))
        return value.reshape(y.shape), trace
    d = y.size
    chunk = min(checks.positive_int(chunk_size, "chunk_size"), d)
    num_chunks = -(-d // chunk)
    basis = jnp.eye(num_chunks * chunk, d, dtype=value.dtype)
    columns = jax.lax.map(jax.vmap(jvp), basis.reshape(num_chunks, chunk, d))
    # Row j of chunk c is J e_{c·chunk + j}; its diagonal entry sits at that index.
    diagonal = jnp.sum(basis.reshape(num_chunks, chunk, d) * columns, axis=-1)
    return value.reshape(y.shape), jnp.sum(diagonal)
