"""LID from Jacobian spectra: exact cases, JVP Jacobians, calibration, lPCA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import lid


def _orthogonal(key, n):
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, n)))
    return q


@pytest.fixture
def linear_decoder(key):
    k1, k2, k3 = jax.random.split(key, 3)
    d = 12
    s = jnp.exp(jnp.linspace(-5.0, 2.0, d))
    u, v = _orthogonal(k1, d), _orthogonal(k2, d)
    w = u @ jnp.diag(s) @ v.T
    return (lambda z: w @ z), s, v, jax.random.normal(k3, (d,))


def test_linear_decoder_threshold_lid_is_exact(linear_decoder):
    fn, s, _, z = linear_decoder
    spectrum = lid.jacobian_spectrum(fn, z, chunk_size=5)
    np.testing.assert_allclose(spectrum.singular_values, s[::-1], rtol=1e-4)
    # Off the grid of log s (≥ 0.009 away): a τ equal to a singular value would test
    # float rounding, not the estimator (log s = -5 vs log τ = -5 failed that way).
    log_taus = jnp.linspace(-6.0, 3.0, 37) + 0.1
    expected = jnp.sum(jnp.log(s)[None, :] > log_taus[:, None], axis=-1)
    np.testing.assert_array_equal(
        lid.threshold_lid(spectrum.singular_values, log_taus), expected
    )
    assert int(lid.threshold_lid(spectrum.singular_values, tau=1.0)) == int(
        jnp.sum(s > 1.0)
    )


def test_linear_decoder_lidl_matches_closed_form(linear_decoder):
    fn, s, v, z = linear_decoder
    spectrum = lid.jacobian_spectrum(fn, z, chunk_size=12, vectors=True)
    deltas = jnp.linspace(-8.0, 6.0, 50)
    lam = np.asarray(s, np.float64) ** 2
    z_tilde = np.asarray(v.T @ z, np.float64)
    var = np.exp(2.0 * np.asarray(deltas, np.float64))[:, None]
    expected = (lam / (lam + var)).sum(-1) + var[:, 0] * (
        lam * z_tilde**2 / (lam + var) ** 2
    ).sum(-1)
    np.testing.assert_allclose(
        lid.lidl(spectrum, z, deltas), expected, rtol=1e-3, atol=1e-3
    )
    ends = lid.lidl(spectrum, z, jnp.array([-30.0, 30.0]))
    np.testing.assert_allclose(ends, [12.0, 0.0], atol=1e-3)


def test_manifold_decoder_has_threshold_lid_d(key):
    """A linear embedding of R^d into R^D followed by an elementwise bijection."""
    d, big_d = 5, 40
    embed = jax.random.normal(key, (big_d, d))
    fn = lambda z: jnp.sinh(embed @ z) + embed @ z  # noqa: E731 (strictly increasing)
    z = jax.random.normal(jax.random.key(7), (d,))
    spectrum = lid.jacobian_spectrum(fn, z, chunk_size=2, expected_dim=big_d)
    assert spectrum.singular_values.shape == (d,)
    assert int(lid.threshold_lid(spectrum.singular_values, -3.0)) == d
    # As a D x D map (padding the latent with ignored dimensions) the count stays d.
    padded = lambda u: fn(u[:d])  # noqa: E731
    full = lid.jacobian_spectrum(padded, jnp.zeros(big_d).at[:d].set(z), chunk_size=16)
    assert int(lid.threshold_lid(full.singular_values, -3.0)) == d


def test_jvp_jacobian_equals_jacfwd(key):
    w = jax.random.normal(key, (30, 7))
    fn = lambda z: jnp.tanh(w @ z).reshape(5, 6)  # noqa: E731
    z = jax.random.normal(jax.random.key(3), (7,))
    for chunk in (1, 3, 7):
        np.testing.assert_allclose(
            lid.jacobian(fn, z, chunk_size=chunk),
            jax.jacfwd(fn)(z).reshape(30, 7),
            atol=1e-6,
        )


def test_vmap_over_images(linear_decoder):
    fn, s, _, _ = linear_decoder
    zs = jax.random.normal(jax.random.key(5), (3, 12))
    values = jax.vmap(
        lambda z: lid.jacobian_spectrum(fn, z, chunk_size=4).singular_values
    )(zs)
    np.testing.assert_allclose(values, jnp.tile(s[::-1], (3, 1)), rtol=1e-4)


def test_bad_input():
    fn = lambda z: 2.0 * z  # noqa: E731
    with pytest.raises(ValueError, match="NaN or inf"):
        lid.jacobian_spectrum(fn, jnp.array([1.0, jnp.nan]))
    # A chunk larger than the latent is clamped to it.
    np.testing.assert_allclose(
        lid.jacobian_spectrum(fn, jnp.ones(2), chunk_size=3).singular_values, [2, 2]
    )
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        lid.jacobian_spectrum(fn, jnp.ones(2), chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        lid.jacobian_spectrum(fn, jnp.ones(2), chunk_size=1.5)
    with pytest.raises(ValueError, match="tau must be positive"):
        lid.threshold_lid(jnp.ones(3), tau=0.0)
    with pytest.raises(ValueError, match="exactly one"):
        lid.threshold_lid(jnp.ones(3))
    with pytest.raises(ValueError, match="expected_dim is 5"):
        lid.jacobian_spectrum(fn, jnp.ones(2), chunk_size=1, expected_dim=5)
    with pytest.raises(ValueError, match="vectors=True"):
        lid.lidl(
            lid.jacobian_spectrum(fn, jnp.ones(2), chunk_size=1),
            jnp.ones(2),
            jnp.zeros(1),
        )


@pytest.mark.slow
def test_flow_spectra_match_the_decoder_jacobian(key):
    from jaxood import flows

    model = flows.Glow(
        flows.GlowConfig(
            image_shape=(8, 8, 1), num_scales=2, steps_per_scale=1, hidden=8
        )
    )
    x = jax.random.uniform(key, (3, 8, 8, 1), minval=-0.5, maxval=0.5)
    params = flows.init(model, jax.random.key(1), x)
    spectrum, z0 = lid.flow_spectra(model, params, x, chunk_size=16)
    assert spectrum.singular_values.shape == (3, 64) and z0.shape == (3, 64)
    decode = lid.flow_decoder(model, params)
    np.testing.assert_allclose(decode(z0[0]), x[0], atol=1e-4)
    expected = jnp.linalg.svd(
        jax.jacfwd(decode)(z0[1]).reshape(64, 64), compute_uv=False
    )
    np.testing.assert_allclose(
        spectrum.singular_values[1], expected, rtol=1e-4, atol=1e-6
    )


@pytest.mark.slow
def test_whole_set_spectra_and_lidl_are_the_per_batch_ones(key):
    from jaxood import data, flows

    model = flows.Glow(
        flows.GlowConfig(
            image_shape=(8, 8, 1), num_scales=2, steps_per_scale=1, hidden=8
        )
    )
    images = np.asarray(jax.random.randint(key, (5, 8, 8, 1), 0, 256), np.uint8)
    x = data.to_model_space(images)
    params = flows.init(model, jax.random.key(1), x)
    got = lid.flow_spectra_images(model, params, images, batch_size=2)
    spectrum, z0 = lid.flow_spectra(model, params, x)
    np.testing.assert_allclose(got["s"], spectrum.singular_values, rtol=1e-5)
    np.testing.assert_allclose(
        got["log_p"], flows.log_prob(model, params, x).total, rtol=1e-5
    )
    assert got["log_p"].dtype == np.float64 and got["s"].shape == (5, 64)
    deltas = np.array([-4.0, 0.0])
    curves = lid.flow_lidl_images(model, params, images[:3], deltas, batch_size=2)
    full, z0 = lid.flow_spectra(model, params, x[:3], vectors=True)
    one = jax.tree.map(lambda a: a[2], full)
    np.testing.assert_allclose(
        curves[2], lid.lidl(one, z0[2], jnp.asarray(deltas)), rtol=1e-4, atol=1e-4
    )


def test_calibration_reaches_the_target():
    s = jnp.exp(jnp.linspace(-6.0, 2.0, 40))[None, :] * jnp.ones((8, 1))
    log_tau, mean = lid.calibrate_log_tau(s, target=25.0)
    assert mean == pytest.approx(25.0, abs=0.5)
    assert int(lid.threshold_lid(s[0], log_tau)) == round(mean)
    with pytest.raises(ValueError, match="outside"):
        lid.calibrate_log_tau(s, target=41.0)


def test_the_widest_tau_is_where_the_lid_of_the_points_varies_most():
    # Two points, D = 2: LID (2, 2) below log τ = -4, (2, 1) between -4 and 0,
    # (0, 0) above. The spread is largest (and equal) inside (-4, 0): the first
    # grid point there.
    s = np.array([[1.0, 1.0], [1.0, np.exp(-4.0)]])
    grid = np.linspace(-10.0, 5.0, 50)
    assert lid.widest_log_tau(s, grid) == grid[grid > -4.0][0]
    with pytest.raises(ValueError, match="N ≥ 2"):
        lid.widest_log_tau(s[:1], grid)
    with pytest.raises(ValueError, match="NaN"):
        lid.widest_log_tau(np.array([[1.0, np.nan], [1.0, 1.0]]), grid)


def test_lpca_finds_the_subspace_dimension_and_matches_sklearn_pca():
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(20, 4)))[0]
    data = rng.normal(size=(300, 4)) @ basis.T + 1e-3 * rng.normal(size=(300, 20))
    data = data.astype(np.float32)
    ours = np.asarray(lid.lpca(data[:50], data, n_neighbors=40, alpha=1e-3))
    assert np.all(ours == 4)
    # The Fukunaga-Olsen rule on sklearn's PCA of the same neighbourhoods.
    _, index = NearestNeighbors(n_neighbors=40).fit(data).kneighbors(data[:50])
    for alpha in (1e-3, 1e-5, 1e-7):
        ours = np.asarray(lid.lpca(data[:50], data, n_neighbors=40, alpha=alpha))
        for i, neighbours in enumerate(index):
            variance = PCA().fit(data[neighbours]).explained_variance_
            assert ours[i] == int(np.sum(variance > alpha * variance[0]))


def test_threshold_lid_batched_over_points_and_thresholds():
    s = jnp.exp(jnp.linspace(-3.0, 3.0, 10))[None, :] * jnp.ones((4, 1))
    counts = lid.threshold_lid(s, jnp.array([-4.0, 0.0, 4.0]))
    assert counts.shape == (4, 3)
    np.testing.assert_array_equal(counts[0], [10, 5, 0])
