"""The multi-scale flow: per-scale decomposition, closed forms, inverses, bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import perturb

from jaxood import data, flows
from jaxood.flows.priors import standard_normal_log_prob

SMALL = dict(image_shape=(8, 8, 1), num_scales=2, steps_per_scale=2, hidden=8)


def _batch(key, shape=(8, 8, 1), n=16):
    return jax.random.uniform(key, (n, *shape), minval=-0.5, maxval=0.5)


@pytest.fixture(
    params=[
        dict(),
        dict(coupling="additive"),
        dict(coupling="spline"),
        dict(prior="conditional"),
        dict(step="realnvp"),
    ],
    ids=["glow-affine", "additive", "spline", "conditional-prior", "realnvp"],
)
def trained_like(request, key):
    """A small flow with data-initialised and then perturbed params."""
    model = flows.Glow(flows.GlowConfig(**SMALL, **request.param))
    x = _batch(key)
    params = flows.init(model, jax.random.key(1), x)
    return model, perturb(params, jax.random.key(2), 0.01), x


def test_per_scale_terms_sum_to_total(trained_like):
    model, params, x = trained_like
    lp = flows.log_prob(model, params, x)
    assert lp.total.shape == (16,) and lp.per_scale.shape == (16, 2)
    np.testing.assert_allclose(lp.per_scale.sum(-1), lp.total, rtol=1e-6, atol=1e-4)
    assert all(bool(jnp.all(jnp.isfinite(t))) for t in (lp.total, lp.per_scale))


def _variants():
    """Every coupling with every prior, and the RealNVP step with both priors.

    The combinations beyond the five of ``trained_like`` are marked slow (each
    compiles a float64 Jacobian of the flow: 10-20 s on two busy CPU cores).
    """
    quick = [
        dict(coupling="affine", prior="diagonal"),
        dict(coupling="additive", prior="diagonal"),
        dict(coupling="spline", prior="diagonal"),
        dict(coupling="affine", prior="conditional"),
        dict(step="realnvp", prior="diagonal"),
    ]
    slow = [
        dict(coupling="additive", prior="conditional"),
        dict(coupling="spline", prior="conditional"),
        dict(step="realnvp", prior="conditional"),
    ]
    return [pytest.param(v, id="-".join(v.values())) for v in quick] + [
        pytest.param(v, id="-".join(v.values()), marks=pytest.mark.slow) for v in slow
    ]


@pytest.mark.parametrize("variant", _variants())
def test_total_matches_change_of_variables(variant, key):
    """log p(x) = log N(u(x); 0, I) + log|det du/dx| with u = all latents, for
    every coupling and prior, at data-initialised then perturbed params.

    In float64: the Jacobians of spline flows reach condition numbers of 1e8, where
    a float32 slogdet is off by tenths of a nat.
    """
    model = flows.Glow(flows.GlowConfig(**SMALL, **variant))
    x = _batch(key)
    params = flows.init(model, jax.random.key(1), x)
    params = perturb(params, jax.random.key(2), 0.01)
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = jnp.asarray(x, jnp.float64)

        def latents(flat):
            u = flows.encode(model, params, flat.reshape(1, *model.config.image_shape))
            return jnp.concatenate([v.reshape(-1) for v in u])

        for b in range(2):
            flat = x[b].reshape(-1)
            _, log_det = jnp.linalg.slogdet(jax.jacfwd(latents)(flat))
            expected = standard_normal_log_prob(latents(flat)[None])[0] + log_det
            total = flows.log_prob(model, params, x[b : b + 1]).total[0]
            np.testing.assert_allclose(total, expected, rtol=1e-9)


def test_encode_decode_round_trip(trained_like):
    model, params, x = trained_like
    np.testing.assert_allclose(
        flows.decode(model, params, flows.encode(model, params, x)), x, atol=1e-4
    )


@pytest.mark.slow
def test_zero_couplings_and_identity_actnorm_give_closed_form(key):
    """Additive couplings at init are the identity and every other step is a
    rotation or permutation, so the flow density is exactly N(x; 0, I); affine
    couplings at init scale half of each scale's tensor by sigmoid(2) per step."""
    x = _batch(key, (16, 16, 1), 8)
    expected = standard_normal_log_prob(x)
    config = dict(image_shape=(16, 16, 1), num_scales=3, steps_per_scale=3, hidden=8)
    additive = flows.Glow(flows.GlowConfig(**config, coupling="additive"))
    params = additive.random_params(jax.random.key(3))
    np.testing.assert_allclose(
        flows.log_prob(additive, params, x).total, expected, rtol=1e-5
    )
    affine = flows.Glow(flows.GlowConfig(**config))
    params = affine.random_params(jax.random.key(3))
    lp = flows.log_prob(affine, params, x)
    log_dets = [
        3 * (h * w * c // 2) * math.log(jax.nn.sigmoid(2.0))
        for h, w, c in affine.scale_shapes
    ]
    for i, u in enumerate(lp.latents):
        prior_term = standard_normal_log_prob(u)
        np.testing.assert_allclose(
            lp.per_scale[:, i], prior_term + log_dets[i], rtol=1e-5
        )


def test_scan_unrolled_and_rolled_agree(key):
    x = _batch(key)
    rolled = flows.Glow(flows.GlowConfig(**SMALL, scan_unroll=False))
    unrolled = flows.Glow(flows.GlowConfig(**SMALL, scan_unroll=True))
    params = flows.init(rolled, jax.random.key(1), x)
    a = flows.log_prob(rolled, params, x)
    b = flows.log_prob(unrolled, params, x)
    np.testing.assert_allclose(a.per_scale, b.per_scale, rtol=1e-5, atol=1e-4)


def test_data_init_standardises_latents(key):
    model = flows.Glow(flows.GlowConfig(**SMALL))
    x = _batch(key, n=64)
    params = flows.init(model, jax.random.key(1), x)
    for u in flows.encode(model, params, x):
        np.testing.assert_allclose(jnp.mean(u, axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(jnp.std(u, axis=0), 1.0, atol=1e-3)


def test_sample_and_temperature(key):
    model = flows.Glow(flows.GlowConfig(**SMALL))
    params = flows.init(model, jax.random.key(1), _batch(key))
    samples = flows.sample(model, params, jax.random.key(5), 4, temperature=0.7)
    assert samples.shape == (4, 8, 8, 1) and bool(jnp.all(jnp.isfinite(samples)))


@pytest.mark.slow
def test_composes_with_vmap_and_jvp(key):
    model = flows.Glow(flows.GlowConfig(**SMALL))
    x = _batch(key, n=4)
    params = flows.init(model, jax.random.key(1), x)

    def per_example(image):
        return flows.log_prob(model, params, image[None]).total[0]

    np.testing.assert_allclose(
        jax.vmap(per_example)(x), flows.log_prob(model, params, x).total, rtol=1e-5
    )
    _, tangent = jax.jvp(per_example, (x[0],), (jnp.ones_like(x[0]),))
    assert jnp.isfinite(tangent)


def test_bad_config_and_input(key):
    with pytest.raises(ValueError, match="divisible by 8.*32x32"):
        flows.GlowConfig(image_shape=(28, 28, 1), num_scales=3)
    with pytest.raises(ValueError, match="coupling must be one of"):
        flows.GlowConfig(coupling="affin")
    model = flows.Glow(flows.GlowConfig(**SMALL))
    x = _batch(key)
    params = flows.init(model, jax.random.key(1), x)
    # log_prob is jitted: static shape and dtype checks, naming the argument.
    with pytest.raises(ValueError, match=r"x has shape \(2, 16, 16, 1\).*expects"):
        flows.log_prob(model, params, jnp.zeros((2, 16, 16, 1)))
    with pytest.raises(ValueError, match=r"expects a batch \(B, 8, 8, 1\)"):
        flows.log_prob(model, params, jnp.zeros((1, 2, 8, 8, 1)))
    with pytest.raises(TypeError, match="x must be floating point"):
        flows.log_prob(model, params, jnp.zeros((2, 8, 8, 1), jnp.uint8))
    with pytest.raises(TypeError, match="model must be a jaxood.flows.Glow"):
        flows.log_prob(flows.GlowConfig(**SMALL), params, x)
    # Values are checked once at the data boundary, and by init on its batch.
    with pytest.raises(ValueError, match="outside model space"):
        data.check_model_space(jnp.full((2, 8, 8, 1), 100.0), (8, 8, 1))
    with pytest.raises(ValueError, match="NaN"):
        flows.init(model, jax.random.key(1), x.at[0, 0, 0, 0].set(jnp.nan))
    with pytest.raises(ValueError, match="x_init must be a batch"):
        flows.init(model, jax.random.key(1), x[0])
    with pytest.raises(ValueError, match="decode expects 2 latents"):
        flows.decode(model, params, (jnp.zeros((1, 4, 4, 2)),))
    with pytest.raises(ValueError, match="decode expects 2 latents"):
        flows.decode(model, params, (jnp.zeros((1, 4, 4, 2)), jnp.zeros((2, 4))))


def test_bits_per_dim_of_real_images(key, data_dir):
    images = data.resize(data.load("fashion_mnist", "test", data_dir=data_dir)[:64], 32)
    model = flows.Glow(
        flows.GlowConfig(image_shape=(32, 32, 1), steps_per_scale=1, hidden=8)
    )
    x = data.dequantize(key, images)
    params = flows.init(model, jax.random.key(1), x)
    bpd = data.bits_per_dim(-flows.log_prob(model, params, x).total, 1024)
    # Data-initialised but untrained: near the 8 bits/dim of a uniform density
    # (measured 7.5), far from the hundreds an uninitialised Gaussian would give.
    assert bool(jnp.all(jnp.isfinite(bpd)))
    assert 5.0 < float(jnp.mean(bpd)) < 9.0


@pytest.mark.slow
def test_rematerialised_couplings_give_the_same_gradient(key):
    x = _batch(key, n=4)
    plain = flows.Glow(flows.GlowConfig(**SMALL))
    remat = flows.Glow(flows.GlowConfig(**SMALL, checkpoint_coupling=True))
    params = flows.init(plain, jax.random.key(1), x)

    def loss(model):
        return jax.grad(lambda p: -jnp.mean(model.forward(p, x).total))(params)

    for a, b in zip(
        jax.tree.leaves(loss(plain)), jax.tree.leaves(loss(remat)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_scan_unroll_defaults_to_the_platform(key, monkeypatch):
    """None unrolls on the CPU (gradients ~17x faster there), rolls elsewhere."""
    model = flows.Glow(flows.GlowConfig(**SMALL))
    assert model.config.scan_unroll is None
    params = model.random_params(key)

    def unrolls(backend):
        monkeypatch.setattr(jax, "default_backend", lambda: backend)
        x = jnp.zeros((1, *SMALL["image_shape"]))
        jaxpr = jax.make_jaxpr(lambda x: model.forward(params, x).total)(x).jaxpr
        return {e.params["unroll"] for e in jaxpr.eqns if e.primitive.name == "scan"}

    assert unrolls("cpu") == {SMALL["steps_per_scale"]}
    assert unrolls("gpu") == unrolls("tpu") == {1}


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_narrow_compute_dtype_keeps_the_likelihood_in_float32(key, dtype):
    """The coupling nets in 16 bits: log p is float32 and close to the float32
    model's on the same params; gradients are float32 and finite."""
    x = _batch(key, n=8)
    wide = flows.Glow(flows.GlowConfig(**SMALL))
    narrow = flows.Glow(flows.GlowConfig(**SMALL, compute_dtype=dtype))
    params = perturb(flows.init(wide, jax.random.key(1), x), jax.random.key(2), 0.05)
    reference, got = wide.forward(params, x).total, narrow.forward(params, x).total
    assert got.dtype == jnp.float32
    dims = math.prod(SMALL["image_shape"])
    # float16/bfloat16 nets: a few hundredths of a nat per dimension at most here.
    assert 0 < float(jnp.max(jnp.abs(got - reference))) / dims < 0.05
    grads = jax.grad(lambda p: -jnp.mean(narrow.forward(p, x).total))(params)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    with pytest.raises(ValueError, match="compute_dtype must be one of"):
        flows.GlowConfig(**SMALL, compute_dtype="int8")
