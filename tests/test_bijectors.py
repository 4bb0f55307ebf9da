"""One generic suite over every bijector: round trip, log-det vs jacfwd, gradients,
data init; every case runs op by op and under ``jax.jit``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import perturb

from jaxood.flows import ActNorm, Bijector, Coupling, InvertibleConv1x1, Squeeze

SHAPES = [(4, 4, 2), (8, 8, 1)]
HIDDEN = 8


def _bijectors(channels: int):
    cases = {
        "actnorm": ActNorm(),
        "conv1x1": InvertibleConv1x1(),
        "squeeze": Squeeze(),
    }
    partitions = ["checkerboard"] + (["channel"] if channels % 2 == 0 else [])
    for transform in ("affine", "additive", "spline"):
        for partition in partitions:
            for parity in (0, 1):
                name = f"{transform}-{partition}-{parity}"
                cases[name] = Coupling(transform, partition, parity, hidden=HIDDEN)
    return cases


CASES = [
    (shape, name, bijector)
    for shape in SHAPES
    for name, bijector in _bijectors(shape[-1]).items()
]
IDS = [f"{name}-{'x'.join(map(str, shape))}" for shape, name, _ in CASES]
# Every case jitted, and op by op on the first shape (eager spline couplings cost
# seconds per case): the bijectors must trace (no value-dependent Python control
# flow, no host transfers) and give the same numbers both ways.
MODES = [
    (*case, jit, f"{case_id}-{'jit' if jit else 'eager'}")
    for case, case_id in zip(CASES, IDS, strict=True)
    for jit in (True, False)
    if jit or case[0] == SHAPES[0]
]
JIT = pytest.mark.parametrize(
    ("shape", "name", "bijector", "jit"),
    [m[:4] for m in MODES],
    ids=[m[4] for m in MODES],
)


def _maybe_jit(fn, jit: bool):
    return jax.jit(fn) if jit else fn


def _params_and_input(bijector, shape, key):
    k_init, k_noise, k_x = jax.random.split(key, 3)
    params = perturb(bijector.init(k_init, shape), k_noise, 0.1)
    # Scale 1.5 puts some spline inputs in the linear tails beyond +-3.
    x = 1.5 * jax.random.normal(k_x, (2, *shape))
    return params, x


@JIT
def test_round_trip(shape, name, bijector, key, jit):
    params, x = _params_and_input(bijector, shape, key)
    y, log_det = _maybe_jit(bijector.forward_and_log_det, jit)(params, x)
    x_back, inverse_log_det = _maybe_jit(bijector.inverse_and_log_det, jit)(params, y)
    assert log_det.shape == (2,)
    np.testing.assert_allclose(x_back, x, atol=1e-4)
    np.testing.assert_allclose(inverse_log_det, -log_det, rtol=1e-4, atol=1e-4)


@JIT
def test_log_det_matches_jacobian(shape, name, bijector, key, jit):
    params, x = _params_and_input(bijector, shape, key)
    forward = _maybe_jit(bijector.forward_and_log_det, jit)

    def f(flat):
        y, _ = forward(params, flat.reshape(1, *shape))
        return y.reshape(-1)

    for b in range(2):
        jacobian = _maybe_jit(jax.jacfwd(f), jit)(x[b].reshape(-1))
        sign, expected = jnp.linalg.slogdet(jacobian)
        _, log_det = forward(params, x[b : b + 1])
        assert sign != 0
        np.testing.assert_allclose(log_det[0], expected, rtol=1e-3, atol=1e-3)


@JIT
def test_gradients_are_finite(shape, name, bijector, key, jit):
    params, x = _params_and_input(bijector, shape, key)

    def loss(p, inputs):
        y, log_det = bijector.forward_and_log_det(p, inputs)
        return jnp.sum(y**2) - jnp.sum(log_det)

    grads = _maybe_jit(jax.grad(loss, argnums=(0, 1)), jit)(params, x)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@JIT
def test_data_init_keeps_the_params_structure(shape, name, bijector, key, jit):
    """The contract Glow's scan relies on: same structure, shapes and dtypes."""
    assert isinstance(bijector, Bijector)
    params, x = _params_and_input(bijector, shape, key)
    new = _maybe_jit(bijector.data_init, jit)(params, x)
    assert jax.tree.structure(new) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    if isinstance(bijector, InvertibleConv1x1 | Squeeze):  # the default: unchanged
        for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(params), strict=True):
            np.testing.assert_array_equal(a, b)


def test_actnorm_data_init_standardises(key):
    x = 3.0 + 2.0 * jax.random.normal(key, (64, 4, 4, 3))
    bijector = ActNorm()
    params = bijector.data_init(bijector.init(key, x.shape[1:]), x)
    y, _ = bijector.forward_and_log_det(params, x)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.std(y, axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_conv1x1_starts_orthogonal(key):
    params = InvertibleConv1x1().init(key, (4, 4, 6))
    w = InvertibleConv1x1.weight(params)
    np.testing.assert_allclose(w @ w.T, jnp.eye(6), atol=1e-5)


def test_zero_network_spline_is_identity(key):
    bijector = Coupling("spline", "channel", hidden=HIDDEN)
    params = bijector.init(key, (4, 4, 2))
    x = 2.0 * jax.random.normal(key, (3, 4, 4, 2))
    y, log_det = bijector.forward_and_log_det(params, x)
    np.testing.assert_allclose(y, x, atol=1e-5)
    np.testing.assert_allclose(log_det, 0.0, atol=1e-4)


def test_bijector_base_class_is_abstract():
    class Incomplete(Bijector):
        def init(self, key, shape):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_bad_coupling_settings():
    with pytest.raises(ValueError, match="transform must be one of"):
        Coupling("sigmoid")
    with pytest.raises(ValueError, match="even channel count"):
        Coupling("affine", "channel").init(jax.random.key(0), (4, 4, 3))
