"""Group and baseline detectors: typicality, KLODS-R, input complexity, WAIC, groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import detectors, metrics


def _latents(key, kind: str, groups=40, size=5, shape=(8, 8, 4)):
    """Groups of latents: N(0, I), channel-correlated, or mean-shifted."""
    z = jax.random.normal(key, (groups, size, *shape))
    if kind == "correlated":  # neighbouring channels share a common factor
        common = jax.random.normal(jax.random.fold_in(key, 1), z.shape[:-1])[..., None]
        z = (z + 1.5 * common) / jnp.sqrt(1 + 1.5**2)  # unit variances, ρ ≈ 0.69
    elif kind == "shifted":
        z = z + 0.3
    return z


def _mvn_samples_and_log_q(key, mu, cov):
    samples = jax.random.multivariate_normal(
        jax.random.fold_in(key, 1), mu, cov, (400_000,)
    )
    return samples, jax.scipy.stats.multivariate_normal.logpdf(samples, mu, cov)


def test_gaussian_kl_matches_monte_carlo(key):
    m = 3
    a = jax.random.normal(key, (m, m)) * 0.5 + jnp.eye(m)
    cov, mu = a @ a.T, jnp.array([0.3, -0.2, 0.5])
    # jax.random / jax.scipy's multivariate normals broadcast internally.
    with jax.numpy_rank_promotion("allow"):
        samples, log_q = _mvn_samples_and_log_q(key, mu, cov)
    parts = detectors.gaussian_kl_parts(samples, ridge=0.0)
    log_p = jnp.sum(jax.scipy.stats.norm.logpdf(samples), axis=-1)
    assert float(parts.full) == pytest.approx(float(jnp.mean(log_q - log_p)), rel=0.02)
    np.testing.assert_allclose(
        parts.full, parts.total_correlation + parts.dimension_wise, rtol=1e-5
    )
    assert float(parts.total_correlation) > 0


def test_klods_separates_standard_from_correlated_and_shifted_latents(key):
    k1, k2, k3 = jax.random.split(key, 3)
    ref = detectors.klods(_latents(k1, "standard"))
    corr = detectors.klods(_latents(k2, "correlated"))
    shift = detectors.klods(_latents(k3, "shifted"))
    # Correlation shows in the total correlation, a shift in the dimension-wise part.
    assert metrics.auroc(ref.total_correlation, corr.total_correlation) == 1.0
    assert metrics.auroc(ref.dimension_wise, shift.dimension_wise) > 0.99
    assert metrics.auroc(ref.full, corr.full) == 1.0
    assert metrics.auroc(ref.full, shift.full) > 0.99
    # Correlation keeps the marginals N(0, 1): the dimension-wise part hardly sees it.
    assert 0.2 < metrics.auroc(ref.dimension_wise, corr.dimension_wise) < 0.9


def test_typicality_sees_correlation_only_through_the_nll_spread(key):
    # The NLL of N(0, I) latents is ½‖z‖² + const. Channel correlation ρ keeps its
    # mean but widens its spread: per pixel Var(½ zᵀz) = ½ tr Σ² = ½ (4 + 12ρ²), so
    # the group-mean NLL is σ = √(1 + 3ρ²) times wider and, for near-Gaussian group
    # means, AUROC(|σ Z| vs |Z|) = (2/π) arctan σ ≈ 0.64: weak, where KLODS-R's total
    # correlation is perfect. A mean shift moves the NLL itself: typicality sees it.
    nll = lambda z: 0.5 * jnp.sum(z.reshape(*z.shape[:2], -1) ** 2, axis=-1)  # noqa: E731
    k0, k1, k2, k3 = jax.random.split(key, 4)
    typ = detectors.typicality()
    stats = typ.fit(nll(_latents(k0, "standard", groups=400)).ravel())
    groups = {
        kind: _latents(k, kind, groups=400)
        for kind, k in (("standard", k1), ("correlated", k2), ("shifted", k3))
    }
    typ_scores = {kind: typ.score(stats, nll(z)) for kind, z in groups.items()}
    rho = 1.5**2 / (1 + 1.5**2)
    expected = 2 / np.pi * np.arctan(np.sqrt(1 + 3 * rho**2))
    correlated = metrics.auroc(typ_scores["standard"], typ_scores["correlated"])
    assert abs(correlated - expected) < 0.05
    assert metrics.auroc(typ_scores["standard"], typ_scores["shifted"]) > 0.85
    kl = {kind: detectors.klods(z).full for kind, z in groups.items()}
    assert metrics.auroc(kl["standard"], kl["correlated"]) == 1.0


def test_typicality_separates_shifted_and_scaled_nll_groups(key):
    # NLLs of N(0, I_d) latents: −log p = ½‖z‖² + const, ‖z‖² ~ χ²_d.
    d = 64
    nll = lambda z: 0.5 * jnp.sum(z**2, axis=-1)  # noqa: E731
    k1, k2, k3, k4 = jax.random.split(key, 4)
    train = nll(jax.random.normal(k1, (2000, d)))
    test_in = nll(jax.random.normal(k2, (500, d)))
    too_likely = nll(0.7 * jax.random.normal(k3, (500, d)))  # the paradox: inside
    shifted = nll(jax.random.normal(k4, (500, d)) + 0.7)
    typ = detectors.typicality()
    stats = typ.fit(train)
    group = lambda v: np.asarray(typ.score(stats, v))  # noqa: E731
    for out in (too_likely, shifted):
        r = metrics.group_auroc(group, test_in, out, group_size=5)
        assert r["mean"] > 0.95 and len(r["per_seed"]) == 3
    # Likelihood alone gets the too-likely set backwards; typicality does not.
    assert metrics.auroc(test_in, too_likely) < 0.05
    threshold = detectors.bootstrap_threshold(
        key, stats, test_in, 5, num_bootstrap=4000
    )
    in_groups = test_in[metrics.group_indices(500, 5, 0)]
    assert float(jnp.mean(typ.score(stats, in_groups) > threshold)) < 0.05


def test_group_indices_drop_the_incomplete_group():
    g = metrics.group_indices(23, 5, seed=3)
    assert g.shape == (4, 5) and len(np.unique(g)) == 20
    np.testing.assert_array_equal(g, metrics.group_indices(23, 5, seed=3))
    with pytest.raises(ValueError, match="groups of 5"):
        metrics.group_indices(3, 5, 0)


def test_input_complexity_units_on_constant_and_noise_images():
    constant = np.full((3, 28, 28, 1), 117, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    for codec in ("png", "jpeg2000"):
        c = detectors.compression_bits_per_dim(constant, codec)
        n = detectors.compression_bits_per_dim(noise, codec)
        # bits/dim: noise cannot go below its 8 bits of entropy per pixel and
        # costs a little more (container headers: up to ~3.7 bits/dim for JPEG 2000
        # at 28×28); a constant is mostly header.
        assert np.all(n > 7.9) and np.all(n < 12.5)
        assert np.all(c < 0.4 * n)
    s = detectors.input_complexity(np.full(3, 2.0), c)
    np.testing.assert_allclose(s, 2.0 - c)
    with pytest.raises(ValueError, match="uint8"):
        detectors.compression_bits_per_dim(constant.astype(np.float32))
    with pytest.raises(ValueError, match="codec"):
        detectors.compression_bits_per_dim(constant, "flif")


def test_waic_of_identical_models_is_the_mean_log_likelihood(key):
    log_p = jax.random.normal(key, (7,)) * 10 - 500
    np.testing.assert_allclose(
        detectors.waic(jnp.stack([log_p] * 5)), -log_p, rtol=1e-6
    )
    spread = jnp.stack([log_p, log_p + 4.0])
    np.testing.assert_allclose(detectors.waic(spread), -(log_p + 2.0 - 8.0), rtol=1e-6)
    with pytest.raises(ValueError, match="K ≥ 2"):
        detectors.waic(log_p[None])


def test_klods_bad_input(key):
    with pytest.raises(ValueError, match=r"\(G, M, H, W, C\)"):
        detectors.klods(jnp.zeros((5, 8, 8, 4)))
    with pytest.raises(ValueError, match="divide"):
        detectors.klods(jnp.zeros((2, 1, 7, 7, 4)), patch_size=2)
    with pytest.raises(ValueError, match="NaN"):
        detectors.klods(jnp.full((2, 1, 8, 8, 4), jnp.nan))
    with pytest.raises(ValueError, match="pooled patches"):
        detectors.klods(jax.random.normal(key, (2, 1, 4, 4, 48)), patch_size=2)
