"""Monotone rational-quadratic splines with linear tails, elementwise.

Inside ``[-bound, bound]`` the map is a monotone rational-quadratic spline with K bins
whose widths, heights and interior knot derivatives come from a network; outside it
is the identity (derivative 1 at both ends makes it C1).

References: Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows",
NeurIPS 2019 (Eqs. 4-6 and the inverse of Appendix A); used as the "rq_nsf" coupling
of Kamkari et al., ICML 2024.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxood.typing import Array

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(raw + offset) + MIN_DERIVATIVE = 1 at raw = 0: zero-initialised networks
# give the identity spline.
_DERIVATIVE_OFFSET = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def num_params(num_bins: int) -> int:
    """Network outputs per transformed element: K widths, K heights, K-1 slopes."""
    return 3 * num_bins - 1


def _knots(raw: Array, bound: float, minimum: float) -> tuple[Array, Array]:
    """Bin sizes and knot positions on [-bound, bound] from unnormalised logits."""
    num_bins = raw.shape[-1]
    sizes = minimum + (1.0 - minimum * num_bins) * jax.nn.softmax(raw, axis=-1)
    knots = jnp.cumsum(sizes, axis=-1)
    # zeros_like keeps the batch sharding (a fresh jnp.zeros would be replicated,
    # and concatenating it with a batch-sharded array fails under explicit axes).
    zero = jnp.zeros_like(knots[..., :1])
    knots = 2.0 * bound * jnp.concatenate([zero, knots], axis=-1) - bound
    # Pin the ends exactly so that the tails join continuously.
    knots = knots.at[..., 0].set(-bound).at[..., -1].set(bound)
    return jnp.diff(knots, axis=-1), knots


def _gather(values: Array, index: Array) -> Array:
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(
    x: Array, params: Array, *, bound: float, inverse: bool = False
) -> tuple[Array, Array]:
    """Applies the spline (or its inverse) elementwise.

    Args:
        x: inputs, shape ``S``.
        params: ``S + (3K - 1,)`` unconstrained network outputs.
        bound: the spline acts on ``[-bound, bound]``; identity outside.
        inverse: apply the inverse map.

    Returns:
        ``(y, log_abs_det)``, both of shape ``S``; ``log_abs_det`` is
        ``log |dy/dx|`` of the map applied (negative of the forward one when
        ``inverse``).
    """
    num_bins = (params.shape[-1] + 1) // 3
    raw_w = params[..., :num_bins]
    raw_h = params[..., num_bins : 2 * num_bins]
    raw_d = params[..., 2 * num_bins :]
    widths, x_knots = _knots(raw_w, bound, MIN_BIN_WIDTH)
    heights, y_knots = _knots(raw_h, bound, MIN_BIN_HEIGHT)
    interior = MIN_DERIVATIVE + jax.nn.softplus(raw_d + _DERIVATIVE_OFFSET)
    one = jnp.ones_like(interior[..., :1])
    derivs = jnp.concatenate([one, interior, one], axis=-1)

    inside = (x >= -bound) & (x <= bound)
    xc = jnp.clip(x, -bound, bound)
    knots = y_knots if inverse else x_knots
    # Bin index: number of interior knots at or below the value.
    index = jnp.sum(xc[..., None] >= knots[..., 1:-1], axis=-1)

    x_k, w_k = _gather(x_knots, index), _gather(widths, index)
    y_k, h_k = _gather(y_knots, index), _gather(heights, index)
    d_k, d_k1 = _gather(derivs, index), _gather(derivs, index + 1)
    slope = h_k / w_k
    curvature = d_k1 + d_k - 2.0 * slope

    if inverse:
        dy = xc - y_k
        a = h_k * (slope - d_k) + dy * curvature
        b = h_k * d_k - dy * curvature
        c = -slope * dy
        disc = jnp.maximum(b * b - 4.0 * a * c, 0.0)
        xi = (2.0 * c) / (-b - jnp.sqrt(disc))
        out = xi * w_k + x_k
    else:
        xi = (xc - x_k) / w_k
        mix = xi * (1.0 - xi)
        out = y_k + h_k * (slope * xi * xi + d_k * mix) / (slope + curvature * mix)

    mix = xi * (1.0 - xi)
    denominator = slope + curvature * mix
    numerator = slope**2 * (d_k1 * xi**2 + 2.0 * slope * mix + d_k * (1.0 - xi) ** 2)
    log_det = jnp.log(numerator) - 2.0 * jnp.log(denominator)
    if inverse:
        log_det = -log_det
    y = jnp.where(inside, out, x)
    return y, jnp.where(inside, log_det, 0.0)
