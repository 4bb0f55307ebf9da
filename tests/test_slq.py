"""Stochastic Lanczos quadrature LID against the exact spectrum path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import checks, lid

LOG_TAUS = jnp.linspace(-10.0, 5.0, 50)
DELTAS = jnp.linspace(-8.0, 2.0, 50)


def _orthogonal(key, n):
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, n)))
    return q


def _linear(s, key, *, rotate: bool):
    """``z -> W z`` with singular values s; W = U diag(s) Vᵀ (V = I unless rotate)."""
    k1, k2 = jax.random.split(key)
    d = s.shape[0]
    v = _orthogonal(k2, d) if rotate else jnp.eye(d)
    w = _orthogonal(k1, d) @ jnp.diag(s) @ v.T
    w_inverse = v @ jnp.diag(1.0 / s) @ _orthogonal(k1, d).T
    return (lambda z: w @ z), (lambda x: w_inverse @ x)


def _exact(fn, z):
    spectrum = lid.jacobian_spectrum(fn, z, vectors=True)
    return (
        lid.threshold_lid(spectrum.singular_values, LOG_TAUS),
        lid.lidl(spectrum, z, DELTAS),
    )


# Clusters near 0 and far above every τ of interest, with empty decades between.
CLUSTERED = jnp.concatenate([
    1e-3 * (1 + 0.01 * jnp.arange(24)),
    1.0 + 0.01 * jnp.arange(20),
    30.0 + 0.1 * jnp.arange(20),
])  # fmt: skip


def test_clustered_spectrum_every_tau_within_the_error_and_lidl_within_two_percent():
    # V = I: a Rademacher probe then sees the spectral measure exactly, so what
    # is tested is the quadrature itself and its guaranteed bracket. λ spans 1e-6
    # to 900, beyond float32 resolution of JᵀJ alone: the inverse side is needed.
    fn, inverse = _linear(CLUSTERED, jax.random.key(0), rotate=False)
    z = jax.random.normal(jax.random.key(1), (64,))
    counts, smooth = _exact(fn, z)
    quadrature = lid.slq(
        fn, z, jax.random.key(2), num_probes=4, num_steps=24, inverse_fn=inverse
    )
    estimate = lid.threshold_lid_from(quadrature, LOG_TAUS)
    assert bool(jnp.all(jnp.abs(estimate.value - counts) <= estimate.error))
    lidl = lid.lidl_from(quadrature, DELTAS)
    np.testing.assert_allclose(lidl.value, smooth, rtol=0.02, atol=0.02)


def test_rotated_spectrum_within_the_error_at_every_tau():
    fn, _ = _linear(CLUSTERED, jax.random.key(3), rotate=True)
    z = jax.random.normal(jax.random.key(4), (64,))
    counts, smooth = _exact(fn, z)
    estimate = lid.slq_threshold_lid(
        fn, z, LOG_TAUS, jax.random.key(5), num_probes=32, num_steps=24
    )
    assert bool(jnp.all(jnp.abs(estimate.value - counts) <= estimate.error))
    lidl = lid.slq_lidl(fn, z, DELTAS, jax.random.key(5), num_probes=32, num_steps=24)
    assert bool(jnp.all(jnp.abs(lidl.value - smooth) <= lidl.error + 1e-3))


def test_nonlinear_decoder_agrees_with_the_exact_spectrum_path():
    k1, k2, k3 = jax.random.split(jax.random.key(6), 3)
    w1 = jax.random.normal(k1, (24, 12)) / 3.0
    w2 = jax.random.normal(k2, (40, 24)) * jnp.exp(jnp.linspace(-4, 1, 24))[None]

    def fn(z):
        return w2 @ jnp.tanh(w1 @ z)

    z = jax.random.normal(k3, (12,))
    counts, smooth = _exact(fn, z)
    # m = d: the Krylov space is the whole space, so only the probes are noisy.
    estimate = lid.slq_threshold_lid(
        fn, z, LOG_TAUS, jax.random.key(7), num_probes=64, num_steps=12
    )
    assert bool(jnp.all(jnp.abs(estimate.value - counts) <= estimate.error))
    lidl = lid.slq_lidl(fn, z, DELTAS, jax.random.key(7), num_probes=64, num_steps=12)
    assert bool(jnp.all(jnp.abs(lidl.value - smooth) <= lidl.error + 1e-3))


def test_the_error_shrinks_as_probes_and_steps_grow():
    s = jnp.exp(jnp.linspace(-5.0, 3.0, 128))
    fn, _ = _linear(s, jax.random.key(8), rotate=True)
    z = jax.random.normal(jax.random.key(9), (128,))
    counts, _ = _exact(fn, z)
    errors, indicators = [], []
    for probes, steps in ((2, 8), (8, 24), (32, 64)):
        est = lid.slq_threshold_lid(
            fn, z, LOG_TAUS, jax.random.key(10), num_probes=probes, num_steps=steps
        )
        errors.append(float(jnp.mean(jnp.abs(est.value - counts))))
        indicators.append(float(jnp.mean(est.error)))
    assert errors[0] > errors[1] > errors[2]
    assert indicators[0] > indicators[1] > indicators[2]


def test_the_inverse_side_resolves_the_small_singular_values():
    s = jnp.exp(jnp.linspace(-7.0, 2.0, 96))  # a trained flow's span of σ
    fn, inverse = _linear(s, jax.random.key(11), rotate=True)
    z = jax.random.normal(jax.random.key(12), (96,))
    counts, smooth = _exact(fn, z)
    small = LOG_TAUS < -4.0
    kwargs = dict(num_probes=16, num_steps=24)
    one = lid.slq_threshold_lid(fn, z, LOG_TAUS, jax.random.key(13), **kwargs)
    two = lid.slq_threshold_lid(
        fn, z, LOG_TAUS, jax.random.key(13), inverse_fn=inverse, **kwargs
    )
    one_error = jnp.abs(one.value - counts)[small].mean()
    assert float(jnp.abs(two.value - counts)[small].mean()) < 0.5 * float(one_error)
    assert bool(jnp.all(jnp.abs(two.value - counts) <= two.error))
    lidl = lid.slq_lidl(fn, z, DELTAS, jax.random.key(13), inverse_fn=inverse, **kwargs)
    assert bool(jnp.all(jnp.abs(lidl.value - smooth) <= lidl.error + 1e-3))


@pytest.mark.parametrize("unroll", [1, True])
def test_jit_and_vmap_match_the_plain_call(unroll):
    # Well conditioned: with λ spanning beyond float32 resolution, the lumped
    # small Ritz values are rounding noise that any reordering of sums changes.
    fn, _ = _linear(
        jnp.exp(jnp.linspace(-1.0, 2.0, 16)), jax.random.key(14), rotate=True
    )
    zs = jax.random.normal(jax.random.key(15), (3, 16))
    keys = jax.random.split(jax.random.key(16), 3)

    def one(z, key):
        q = lid.slq(fn, z, key, num_probes=4, num_steps=8, unroll=unroll)
        return lid.threshold_lid_from(q, LOG_TAUS), lid.lidl_from(q, DELTAS)

    plain = one(zs[1], keys[1])
    jitted = jax.jit(one)(zs[1], keys[1])
    batched = jax.vmap(one)(zs, keys)
    leaves = [jax.tree.leaves(t) for t in (plain, jitted, batched)]
    # atol: the indicators' rounding term is a difference of nearby float32 LIDL
    # values (up to 16 here), so its own rounding is a few ε × 16 ≈ 1e-5.
    for a, b, c in zip(*leaves, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-5)
        np.testing.assert_allclose(a, c[1], rtol=1e-5, atol=5e-5)


def test_breakdown_on_a_low_rank_decoder_stays_finite_and_exact():
    w = jnp.zeros((10, 10)).at[0, 0].set(3.0).at[1, 1].set(0.5)
    fn = lambda z: w @ z  # noqa: E731
    z = jnp.ones(10)
    est = lid.slq_threshold_lid(
        fn, z, jnp.array([-3.0, -1.0, 0.5, 2.0]), jax.random.key(0),
        num_probes=4, num_steps=6,
    )  # fmt: skip
    assert bool(jnp.all(jnp.isfinite(est.value)))
    np.testing.assert_allclose(est.value, [2, 2, 1, 0], atol=1e-4)


def test_bad_input_raises_clear_errors():
    fn = lambda z: 2.0 * z  # noqa: E731
    key = jax.random.key(0)
    with pytest.raises(checks.InputError, match="z contains 1 NaN or inf"):
        lid.slq(fn, jnp.array([1.0, jnp.nan, 0.0]), key, num_probes=2, num_steps=2)
    with pytest.raises(ValueError, match="num_probes must be an integer ≥ 1"):
        lid.slq(fn, jnp.ones(3), key, num_probes=0, num_steps=2)
    with pytest.raises(ValueError, match="num_steps must be an integer ≥ 1"):
        lid.slq(fn, jnp.ones(3), key, num_probes=2, num_steps=0)
    with pytest.raises(ValueError, match="pass num_steps ≤ 3"):
        lid.slq(fn, jnp.ones(3), key, num_probes=2, num_steps=4)
    quadrature = lid.slq(fn, jnp.ones(3), key, num_probes=2, num_steps=2)
    with pytest.raises(ValueError, match=r"must be a \(T,\) array"):
        lid.threshold_lid_from(quadrature, jnp.float32(0.0))
    with pytest.raises(checks.InputError, match="deltas contains 1 NaN"):
        lid.lidl_from(quadrature, jnp.array([0.0, jnp.nan]))
    with pytest.raises(TypeError, match="SpectralQuadrature"):
        lid.lidl_from(quadrature.gram, jnp.zeros(2))


def _small_flow(seed: int, count: int):
    """A nonlinear 8×8 Glow (perturbed couplings) and ``count`` images."""
    from jaxood import flows
    from tests.helpers import perturb

    model = flows.Glow(
        flows.GlowConfig(
            image_shape=(8, 8, 1), num_scales=2, steps_per_scale=2, hidden=8
        )
    )
    key = jax.random.key(seed)
    x = jax.random.uniform(key, (count, 8, 8, 1), minval=-0.5, maxval=0.5)
    keys = jax.random.split(key, 2)
    params = perturb(model.random_params(keys[0]), keys[1], 0.05)
    return model, model.data_init(params, x), x


@pytest.mark.slow
def test_flow_slq_matches_the_exact_flow_spectra():
    model, params, x = _small_flow(0, 2)
    spectrum, z0 = lid.flow_spectra(model, params, x, vectors=True)
    quadrature, z_slq = lid.flow_slq(
        model, params, x, jax.random.key(3), num_probes=16, num_steps=32
    )
    np.testing.assert_allclose(z_slq, z0, atol=1e-5)
    counts = lid.threshold_lid(spectrum.singular_values, LOG_TAUS)
    estimate = jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(quadrature, LOG_TAUS)
    assert bool(jnp.all(jnp.abs(estimate.value - counts) <= estimate.error))
    smooth = jax.vmap(lid.lidl, in_axes=(0, 0, None))(spectrum, z0, DELTAS)
    lidl = jax.vmap(lid.lidl_from, in_axes=(0, None))(quadrature, DELTAS)
    assert bool(jnp.all(jnp.abs(lidl.value - smooth) <= lidl.error + 1e-3))


@pytest.mark.slow
def test_slq_of_a_flow_is_slq_of_its_spectrum_in_its_eigenbasis():
    """The identity benchmarks/slq_limits.py rests on: Lanczos on JᵀJ = V Σ² Vᵀ from
    v is Lanczos on Σ² from Vᵀv, so a linear stand-in decoder built from the exact
    SVD gives the flow's own SLQ estimate with the same keys."""
    from benchmarks.slq_limits import standin_slq

    model, params, x = _small_flow(4, 3)
    spectrum, z0 = lid.flow_spectra(model, params, x, vectors=True)
    key = jax.random.key(7)
    flow, _ = lid.flow_slq(model, params, x, key, num_probes=3, num_steps=12)
    standin = standin_slq(
        spectrum.singular_values, spectrum.right_vectors, z0,
        jax.random.split(key, len(x)), num_probes=3, num_steps=12,
    )  # fmt: skip
    for q in (flow, standin):
        assert q.gram.nodes.shape == (3, 4, 12)
    counts = [
        jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(q, LOG_TAUS).value
        for q in (flow, standin)
    ]
    np.testing.assert_allclose(counts[0], counts[1], atol=0.05)
    smooth = [
        jax.vmap(lid.lidl_from, in_axes=(0, None))(q, DELTAS).value
        for q in (flow, standin)
    ]
    np.testing.assert_allclose(smooth[0], smooth[1], rtol=1e-3, atol=1e-3)
    # A stand-in with other eigenvectors (same spectrum) is another estimate.
    other = standin_slq(
        spectrum.singular_values, spectrum.right_vectors[:, ::-1], z0,
        jax.random.split(key, len(x)), num_probes=3, num_steps=12,
    )  # fmt: skip
    moved = jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(other, LOG_TAUS)
    assert float(jnp.max(jnp.abs(moved.value - counts[0]))) > 0.5
