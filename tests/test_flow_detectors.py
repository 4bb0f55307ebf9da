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
