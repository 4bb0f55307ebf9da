"""Flow detectors and the outlier loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import data, detectors, flows
from jaxood.data import synthetic
from jaxood.flows.losses import nll_loss, outlier_loss

CONFIG = flows.GlowConfig(
    image_shape=(8, 8, 1), num_scales=2, steps_per_scale=1, hidden=8
)


def test_scores_are_anomaly_scores():
    log_p = jnp.array([-10.0, -50.0])
    np.testing.assert_array_equal(
        detectors.negative_log_likelihood(log_p), [10.0, 50.0]
    )
    per_scale = jnp.array([[-1.0, -2.0, -3.0], [-1.0, -2.0, -9.0]])
    np.testing.assert_array_equal(detectors.final_scale(per_scale), [3.0, 9.0])
    # An input the ID model likes more than the general model is less anomalous.
    ratio = detectors.likelihood_ratio(
        jnp.array([-5.0, -20.0]), jnp.array([-10.0, -10.0])
    )
    np.testing.assert_array_equal(ratio, [-5.0, 10.0])


def test_detector_bad_input():
    with pytest.raises(ValueError, match="same inputs"):
        detectors.likelihood_ratio(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        detectors.final_scale(jnp.zeros(3))


@pytest.fixture(scope="module")
def model_and_params():
    model = flows.Glow(CONFIG)
    images = data.resize(synthetic.uniform_noise(32, seed=1), 8)
    params = flows.init(
        model, jax.random.key(0), data.dequantize(jax.random.key(1), images)
    )
    return model, params, images


@pytest.mark.slow
def test_outlier_loss_with_zero_weight_is_the_nll(model_and_params):
    model, params, images = model_and_params
    key = jax.random.key(4)
    plain, _ = nll_loss(model)(params, images, key)
    batch = (images, images, params)
    combined, aux = outlier_loss(model, weight=0.0)(params, batch, key)
    key_in, _ = jax.random.split(key)
    expected, _ = nll_loss(model)(params, images, key_in)
    np.testing.assert_allclose(combined, expected, rtol=1e-6)
    assert float(aux["outlier_llr"]) == pytest.approx(0.0, abs=1e-3)
    assert jnp.isfinite(plain)


@pytest.mark.slow
def test_outlier_loss_pushes_outlier_likelihood_below_general(model_and_params):
    """The outlier term's gradient lowers log p_in on outliers (general frozen)."""
    model, params, images = model_and_params
    outliers = synthetic.constant(32, seed=2)[:, :8, :8]
    loss_fn = outlier_loss(model, weight=6000.0, temperature=1000.0)
    batch = (images, outliers, params)
    grads = jax.grad(lambda p: loss_fn(p, batch, jax.random.key(0))[0])(params)
    step = jax.tree.map(lambda p, g: p - 1e-6 * g, params, grads)
    x_out = data.to_model_space(outliers)
    before = flows.log_prob(model, params, x_out).total.mean()
    after = flows.log_prob(model, step, x_out).total.mean()
    assert after < before


def test_mutation_replaces_the_expected_fraction_by_uniform_values(key):
    images = np.full((256, 16, 16, 1), 7, np.uint8)
    mutated = np.asarray(data.mutate(key, images, 0.3))
    assert mutated.dtype == np.uint8 and mutated.shape == images.shape
    changed = mutated != 7
    # A mutated pixel keeps 7 with probability 1/256: changed ≈ 0.3 · 255/256.
    assert abs(changed.mean() - 0.3 * 255 / 256) < 0.01
    counts = np.bincount(mutated[changed], minlength=256)
    others = np.delete(counts, 7)  # about 77 each if uniform
    assert counts[7] == 0 and others.min() > 0.5 * others.mean()
    np.testing.assert_array_equal(data.mutate(key, images, 0.0), images)
    np.testing.assert_array_equal(data.mutate(key, images, 0.3), mutated)
    with pytest.raises(ValueError, match="mutation rate"):
        data.mutate(key, images, 1.5)
    with pytest.raises(TypeError, match="uint8"):
        data.mutate(key, images.astype(np.float32), 0.1)


def test_background_loss_sees_mutated_images(model_and_params):
    model, params, images = model_and_params
    key = jax.random.key(5)
    plain, _ = nll_loss(model)(params, images, key)
    background, _ = nll_loss(model, mutation_rate=0.5)(params, images, key)
    mutate_key, noise_key = jax.random.split(key)
    mutated = data.mutate(mutate_key, images, 0.5)
    expected, _ = nll_loss(model)(params, mutated, noise_key)
    np.testing.assert_allclose(background, expected, rtol=1e-6)
    assert float(background) != float(plain)


def test_latents_in_image_layout_undo_the_squeeze_and_split(key):
    x = jax.random.normal(key, (2, 32, 32, 1))
    latents, h = [], x
    for i in range(3):  # the bookkeeping of a 3-scale Glow without flow steps
        h = flows.squeeze(h)
        if i < 2:
            half = h.shape[-1] // 2
            latents.append(h[..., :half])
            h = h[..., half:]
    latents.append(h)
    np.testing.assert_array_equal(flows.latents_to_image(tuple(latents)), x)


def _outputs(rng, n, shift=0.0):
    """A log_prob_images-like output: log p and latents (image layout, scale 0)."""
    latents = rng.normal(shift, 1.0 + shift, (n, 8, 8, 2)).astype(np.float32)
    return {
        "total": rng.normal(-100.0 - 40.0 * shift, 2.0, n),
        "latents": latents,
        "latents_0": latents[:, ::2, ::2],
    }


def test_flow_baselines_score_per_image_and_need_their_models():
    rng = np.random.default_rng(0)
    out, images = _outputs(rng, 12), rng.integers(0, 256, (12, 8, 8, 1), np.uint8)
    options = {"klods_variants": ("image:2", "scale0:1"), "codecs": ("png",)}
    scores = detectors.flow_baseline_scores(out, images, 100.0, 128, **options)
    assert sorted(scores) == sorted(
        ["typicality", "complexity_png"]
        + [
            f"klods_{v}{p}"
            for v in ("image_k2", "scale0_k1")
            for p in detectors.KLODS_PARTS
        ]
    )
    np.testing.assert_allclose(
        scores["typicality"], np.abs(-out["total"] - 100.0), atol=1e-4
    )  # float32
    assert all(s.shape == (12,) and np.isfinite(s).all() for s in scores.values())
    one_member = detectors.flow_baseline_scores(
        out, images, 100.0, 128, codecs=(), ensemble_log_p=[out["total"]],
        background_log_p=out["total"] - 3.0,
    )  # fmt: skip
    assert "waic" not in one_member  # WAIC needs two or more members
    np.testing.assert_allclose(one_member["ren_llr"], -3.0)
    with pytest.raises(ValueError, match="layout"):
        detectors.flow_baseline_scores(out, images, 100.0, 128, klods_variants=("x:2",))


def test_flow_group_results_separate_shifted_groups_and_flag_them():
    rng = np.random.default_rng(1)
    outputs = {"id_test": _outputs(rng, 40), "ood/far": _outputs(rng, 40, 1.0)}
    nll_val = -_outputs(rng, 60)["total"]
    results = detectors.flow_group_results(
        outputs, 100.0, nll_val, jax.random.key(0), group_sizes=(5,),
        seeds=(0, 1), bootstrap_resamples=100,
    )  # fmt: skip
    group = results["5"]
    assert set(group["auroc"]) == {"typicality"} | {
        f"klods_image_k2{p}" for p in detectors.KLODS_PARTS
    }
    assert group["auroc"]["typicality"]["far"]["mean"] == 1.0
    assert group["auroc"]["klods_image_k2"]["far"]["mean"] > 0.9
    flagged = group["typicality_test"]["flagged"]
    assert flagged["far"] == 1.0 and flagged["id_test"] <= 0.25
