"""Density of states: joint structure, ID-only fitting, unit invariance, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import dose_pipeline
from jaxood import checks, detectors, metrics
from jaxood.detectors.density_of_states import BANDWIDTH_FACTORS

METHODS = ("kde", "gmm")


def _correlated(rng, n, sign):
    """Two features with the same symmetric marginals (|a| in [1, 2], either sign)
    and b = ``sign`` × a + small noise."""
    a = rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.0, n)
    return {"a": a, "b": sign * a + 0.05 * rng.normal(size=n)}


@pytest.fixture(scope="module")
def tables():
    """ID: b ≈ a; OOD: b ≈ −a. Every single feature has the same distribution."""
    rng = np.random.default_rng(0)
    return {
        "fit": _correlated(rng, 600, 1.0),
        "id_test": _correlated(rng, 300, 1.0),
        "ood/anti": _correlated(rng, 300, -1.0),
    }


@pytest.mark.parametrize("method", METHODS)
def test_separates_a_combination_no_single_feature_separates(tables, method):
    scores = dose_pipeline.fit_and_score(
        tables, ["a", "b"], detectors.density_of_states(method)
    )
    assert metrics.auroc(scores["id_test"], scores["ood/anti"]) > 0.99
    for feature in ("a", "b"):
        one = dose_pipeline.fit_and_score(
            tables, [feature], detectors.density_of_states(method)
        )
        assert abs(metrics.auroc(one["id_test"], one["ood/anti"]) - 0.5) < 0.1


def test_fit_reads_no_ood_row(tables):
    """OOD tables replaced by NaN: fitting still works and the ID scores are the
    same, so no OOD row entered the fit."""
    poisoned = dict(
        tables, **{"ood/anti": {"a": np.full(300, np.nan), "b": np.ones(300)}}
    )
    detector = detectors.density_of_states()
    clean = dose_pipeline.fit_and_score(tables, ["a", "b"], detector)
    with pytest.raises(checks.InputError, match="NaN"):
        dose_pipeline.fit_and_score(poisoned, ["a", "b"], detector)
    without = {k: v for k, v in poisoned.items() if k != "ood/anti"}
    np.testing.assert_array_equal(
        dose_pipeline.fit_and_score(without, ["a", "b"], detector)["id_test"],
        clean["id_test"],
    )


@pytest.mark.parametrize("method", METHODS)
def test_invariant_to_feature_units(tables, method):
    """A positive scale and a shift of one feature (other units) change no score."""
    detector = detectors.density_of_states(method)
    rescale = lambda t: {"a": 1000.0 * t["a"] - 7.0, "b": t["b"]}  # noqa: E731
    state = detector.fit(tables["fit"])
    state_rescaled = detector.fit(rescale(tables["fit"]))
    np.testing.assert_allclose(
        detector.score(state_rescaled, rescale(tables["ood/anti"])),
        detector.score(state, tables["ood/anti"]),
        rtol=1e-3,
        atol=1e-3,
    )


def test_kde_bandwidth_maximises_the_leave_one_out_likelihood(tables):
    fit = {k: v[:100] for k, v in tables["fit"].items()}
    state = detectors.density_of_states("kde").fit(fit)
    points = np.asarray(state.points, np.float64)  # whitened fit set
    squared = np.sum((points[:, None] - points[None]) ** 2, axis=-1)
    np.fill_diagonal(squared, np.inf)
    scott = 100 ** (-1 / 6)

    def loo(h):  # mean log of the other 99 points' kernels, in whitened units
        kernel = np.exp(-0.5 * squared / h**2) / (2 * np.pi * h**2)
        return np.mean(np.log(kernel.sum(axis=1) / 99))

    grid = [scott * f for f in BANDWIDTH_FACTORS]
    best = grid[int(np.argmax([loo(h) for h in grid]))]
    np.testing.assert_allclose(float(state.bandwidth), best, rtol=1e-5)
    assert best not in (grid[0], grid[-1])  # an interior optimum
    np.testing.assert_allclose(
        float(state.fit_log_likelihood),
        loo(best) + float(state.log_det_whiten),
        rtol=1e-3,
    )


@pytest.mark.parametrize("method", METHODS)
def test_jit(tables, method):
    detector = detectors.density_of_states(method)
    state = detector.fit(tables["fit"])
    jitted = jax.jit(detector.score)(
        jax.jit(detector.fit)(tables["fit"]), tables["id_test"]
    )
    np.testing.assert_allclose(
        jitted, detector.score(state, tables["id_test"]), rtol=1e-4, atol=1e-4
    )


def test_gaussian_data_gives_the_gaussian_density():
    """GMM with one component on Gaussian features recovers −log N(z; 0, Σ)."""
    rng = np.random.default_rng(1)
    fit = {"a": rng.normal(size=4000), "b": rng.normal(size=4000)}
    detector = detectors.density_of_states("gmm", num_components=1)
    point = {"a": np.array([0.0, 2.0]), "b": np.array([0.0, -1.0])}
    scores = np.asarray(detector.score(detector.fit(fit), point))
    expected = 0.5 * np.array([0.0, 5.0]) + np.log(2 * np.pi)
    np.testing.assert_allclose(scores, expected, atol=0.1)


def test_bad_input(tables):
    detector = detectors.density_of_states()
    state = detector.fit(tables["fit"])
    with pytest.raises(checks.InputError, match=r"stats\['a'\].*NaN"):
        detector.fit({"a": np.array([1.0, np.nan, 2.0, 3.0]), "b": np.ones(4) * 2})
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        detector.score(state, {"a": np.zeros(3), "c": np.zeros(3)})
    with pytest.raises(ValueError, match="non-empty dict"):
        detector.fit({})
    with pytest.raises(ValueError, match="at least 3"):
        detector.fit({"a": np.zeros(0), "b": np.zeros(0)})
    with pytest.raises(ValueError, match="same N"):
        detector.fit({"a": np.zeros(5), "b": np.zeros(4)})
    with pytest.raises(checks.InputError, match="constant"):
        detector.fit({"a": np.arange(5.0), "b": np.full(5, 3.0)})
    with pytest.raises(ValueError, match="method"):
        detectors.density_of_states("svm")
    with pytest.raises(ValueError, match="ridge"):
        detectors.density_of_states(ridge=0.0)


def test_typicality_uses_the_fit_table_entropy():
    fit = {"log_p": jnp.array([-10.0, -12.0])}
    other = {"log_p": np.array([-11.0, -20.0])}
    fit_t, other_t = detectors.with_typicality(fit, other)
    np.testing.assert_allclose(other_t["typicality"], [0.0, 9.0])
    np.testing.assert_allclose(fit_t["typicality"], [1.0, 1.0])


def test_family_statistics_agree_with_the_model_functions(key):
    """Flow: per-scale terms sum to log p = log_prob_images; VAE: log p is the IWAE
    estimate of the same draws (batch i uses fold_in(key, i))."""
    from jaxood import data, flows, vae

    glow = flows.Glow(
        flows.GlowConfig(
            image_shape=(8, 8, 1), num_scales=2, steps_per_scale=1, hidden=4
        )
    )
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    params = glow.random_params(key)
    table = detectors.flow_statistics(glow, params, images, general_params=params)
    np.testing.assert_allclose(table["lp_scale0"] + table["lp_scale1"], table["log_p"])
    np.testing.assert_allclose(table["log_p_general"], table["log_p"])
    assert set(table) >= {"latent_sq0", "klods_tc", "klods_dw", "complexity_png"}
    (fit,) = detectors.with_typicality(table)
    published = detectors.published_scores(fit, "flow")
    np.testing.assert_allclose(published["Glow −log p"], -table["log_p"])
    np.testing.assert_allclose(published["Glow final scale"], -table["lp_scale1"])
    np.testing.assert_allclose(published["ratio to general Glow"], 0.0)
    assert published["typicality"] is fit["typicality"] and len(published) == 6
    with pytest.raises(ValueError, match="family must be"):
        detectors.published_scores(fit, "diffusion")

    model = vae.VAE(
        vae.VAEConfig(
            image_shape=(8, 8, 1), architecture="mlp", latent="gaussian", latent_dim=2,
            hidden=(8,), likelihood="bernoulli",
        )
    )  # fmt: skip
    vp = vae.init(model, key)
    stats = detectors.vae_statistics(
        model, vp, images, key, num_samples=4, chunk_size=2, batch_size=6
    )
    x = data.to_unit_interval(images)
    log_lik, iwae = vae.importance_estimates(
        model, vp, x, jax.random.fold_in(key, 0), 4, 2
    )
    np.testing.assert_allclose(stats["log_p"], iwae, rtol=1e-5)
    np.testing.assert_allclose(
        stats["distortion"], -np.mean(log_lik, axis=1), rtol=1e-5
    )
    assert np.all(stats["rate"] >= 0) and np.all(stats["hole"] > 0)
    np.testing.assert_allclose(  # the hole indicator spreads the same draws
        stats["hole"], detectors.hole_indicator(log_lik), rtol=1e-5
    )
    scaled = detectors.vae_statistics(  # float inputs go in as they are
        model, vp, x * 0.5, key, num_samples=4, chunk_size=2, batch_size=6
    )
    half = vae.importance_estimates(
        model, vp, x * 0.5, jax.random.fold_in(key, 0), 4, 2
    )
    np.testing.assert_allclose(scaled["log_p"], half[1], rtol=1e-5)
    with pytest.raises(TypeError, match="uint8 pixels .* or float32"):
        detectors.vae_statistics(model, vp, images.astype(np.int32), key)
