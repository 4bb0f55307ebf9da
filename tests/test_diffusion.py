"""The VP-SDE, the score model, the probability-flow likelihood, FLIPD and the
normal bundle, checked against closed forms (Gaussian data, where every score and
density is known)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxood import checks, diffusion, train
from jaxood.diffusion import VPSDE

SDE = VPSDE()
D, d, EPS = 12, 3, 1e-4


def _subspace_gaussian():
    """Data N(0, U Uᵀ + ε² I) on a d-dimensional subspace of R^D, its VP-SDE score
    and one on-manifold point."""
    basis = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (D, d)))[0]

    def score_fn(y, t):
        # −Σ_t⁻¹ y in the eigenbasis of Σ_t = ψ² (U Uᵀ + ε² I) + σ² I: stable in
        # float32 where forming Σ_t is not (its off-subspace eigenvalues ~1e-8).
        alpha2, sigma2 = SDE.alpha(t) ** 2, SDE.sigma(t) ** 2
        along = basis @ (basis.T @ y)
        return -along / (alpha2 * (1 + EPS**2) + sigma2) - (y - along) / (
            alpha2 * EPS**2 + sigma2
        )

    x = basis @ jax.random.normal(jax.random.key(1), (d,))
    return score_fn, x


def test_vpsde_schedule_and_marginals_match_monte_carlo(key):
    np.testing.assert_allclose(SDE.alpha(0.01), 0.999003, atol=1e-6)
    np.testing.assert_allclose(SDE.sigma(0.01), 0.044643, atol=1e-6)
    np.testing.assert_allclose(SDE.alpha(0.3) ** 2 + SDE.sigma(0.3) ** 2, 1.0, 1e-6)
    # Euler–Maruyama paths of the SDE itself against the closed-form marginal.
    x0, t, steps, n = jnp.array([1.5, -0.5]), 0.4, 400, 20_000
    dt = t / steps

    def step(x, inputs):
        s, k = inputs
        noise = jax.random.normal(k, x.shape)
        beta = SDE.beta(s * dt)
        return x - 0.5 * beta * x * dt + jnp.sqrt(beta * dt) * noise, None

    keys = jax.random.split(key, steps)
    xs, _ = jax.lax.scan(step, jnp.broadcast_to(x0, (n, 2)), (jnp.arange(steps), keys))
    np.testing.assert_allclose(xs.mean(0), SDE.alpha(t) * x0, atol=0.02)
    np.testing.assert_allclose(xs.std(0), SDE.sigma(t) * jnp.ones(2), rtol=0.02)
    sample, _ = SDE.marginal_sample(key, jnp.broadcast_to(x0, (n, 2)), t)
    np.testing.assert_allclose(sample.std(0), xs.std(0), rtol=0.03)


def test_flipd_plateau_limits_and_knee():
    score_fn, x = _subspace_gaussian()
    t0s = jnp.geomspace(1e-8, 1.0, 40)
    curve = np.asarray(diffusion.flipd_sweep(score_fn, x[None], t0s, sde=SDE)[0])
    plateau = (SDE.alpha(t0s) * EPS * 30 < SDE.sigma(t0s)) & (
        SDE.sigma(t0s) * 10 < SDE.alpha(t0s)
    )
    assert plateau.sum() >= 10
    np.testing.assert_allclose(curve[np.asarray(plateau)], d, atol=0.15)
    assert curve[0] > D - 1.0  # t0 -> 0: the full dimension
    assert curve[-1] < 0.05  # t0 -> 1: nothing left
    assert plateau[diffusion.knee(np.asarray(t0s), curve)]
    single = diffusion.flipd(score_fn, x, t0s[25], sde=SDE)
    np.testing.assert_allclose(single, curve[25], rtol=1e-5)


def test_hutchinson_flipd_is_unbiased(key):
    score_fn, x = _subspace_gaussian()
    exact = diffusion.flipd(score_fn, x, 0.05, sde=SDE)
    for probe in ("rademacher", "gaussian"):
        draws = jax.vmap(
            lambda k: diffusion.flipd(
                score_fn,
                x,
                0.05,
                k,
                sde=SDE,
                num_probes=2,
                probe=probe,  # noqa: B023
            )
        )(jax.random.split(key, 400))
        error = float(jnp.std(draws) / np.sqrt(len(draws)))
        assert abs(float(jnp.mean(draws) - exact)) < 3.5 * error
        assert float(jnp.std(draws)) > 0  # it is an estimate, not the exact trace


def test_flipd_jit_vmap_and_sweep_agree(key):
    score_fn, x = _subspace_gaussian()
    xs = jnp.stack([x, 0.5 * x])
    t0s = jnp.array([0.01, 0.1])
    sweep = diffusion.flipd_sweep(score_fn, xs, t0s, key, sde=SDE, num_probes=3)
    jitted = jax.jit(
        lambda x, t, k: diffusion.flipd(score_fn, x, t, k, sde=SDE, num_probes=3)
    )
    for i in range(2):
        for j in range(2):
            k = jax.random.fold_in(key, i)
            np.testing.assert_allclose(jitted(xs[i], t0s[j], k), sweep[i, j], 1e-5)
    mapped = jax.vmap(lambda x: diffusion.flipd(score_fn, x, 0.1, sde=SDE))(xs)
    np.testing.assert_allclose(mapped, diffusion.flipd_sweep(
        score_fn, xs, t0s[1:], sde=SDE)[:, 0], rtol=1e-5)  # fmt: skip


def test_normal_bundle_finds_the_subspace(key):
    score_fn, x = _subspace_gaussian()
    result = diffusion.normal_bundle_lid(score_fn, x, key, sde=SDE)
    assert int(result.lid) == d
    assert result.singular_values.shape == (D,)


def test_ode_likelihood_of_a_gaussian_is_exact(key):
    mean = 0.3 * jnp.ones(D)
    cov0 = 0.5 * jnp.eye(D) + 0.1

    def cov(t):
        return SDE.alpha(t) ** 2 * cov0 + SDE.sigma(t) ** 2 * jnp.eye(D)

    def score_fn(y, t):
        return -jnp.linalg.solve(cov(t), y - SDE.alpha(t) * mean)

    ys = jnp.stack([mean + 0.5, mean - 0.2 * jnp.arange(D) / D])
    exact = jax.vmap(
        lambda y: jax.scipy.stats.multivariate_normal.logpdf(
            y, SDE.alpha(1e-5) * mean, cov(1e-5)
        )
    )(ys)
    out = diffusion.ode_log_prob_batch(score_fn, ys, sde=SDE, num_probes=None)
    assert np.all(np.abs(np.asarray(out.log_prob - exact)) / D < 0.01)
    fixed = diffusion.ode_log_prob_batch(
        score_fn, ys, sde=SDE, num_probes=None, solver="heun", num_steps=200
    )
    assert np.all(np.abs(np.asarray(fixed.log_prob - exact)) / D < 0.05)
    with pytest.raises(ValueError, match="num_steps"):
        diffusion.ode_log_prob_batch(score_fn, ys, sde=SDE, solver="euler")
    one = jax.jit(
        lambda y: diffusion.ode_log_prob(score_fn, y, sde=SDE, num_probes=None)
    )(ys[0])
    np.testing.assert_allclose(one.log_prob, out.log_prob[0], rtol=1e-4)
    # Hutchinson: unbiased over probe draws (a Gaussian score has a constant
    # Jacobian, so every probe set gives the same path and a noisy integral).
    many = diffusion.ode_log_prob_batch(
        score_fn, jnp.broadcast_to(ys[0], (64, D)), key, sde=SDE, num_probes=1
    ).log_prob
    error = float(jnp.std(many) / 8.0)
    assert abs(float(jnp.mean(many) - exact[0])) < 3.5 * error + 0.01 * D


def test_ode_benchmark_reports_errors_in_the_units_it_names():
    """benchmarks/ode_tolerance: a solve that finds every image e^{D/2} times too
    likely is half a nat/dim off and 0.5 / ln 2 bits/dim too low."""
    from benchmarks.ode_tolerance import _compare

    reference = np.array([-900.0, -800.0, -700.0, -600.0])
    names = np.array(["a", "a", "b", "b"])
    shifted = reference + 0.5 * 784 * np.array([1.0, 1.0, 1.0, 2.0])
    out = _compare(shifted, reference, np.array([8, 9, 8, 12]), names, 784)
    assert out["steps"] == [8, 12]
    assert out["max_abs_error_nats_per_dim"] == pytest.approx(1.0)
    bits = out["mean_error_bits_per_dim"]
    assert bits["a"] == pytest.approx(-0.5 / np.log(2))
    assert bits["b"] == pytest.approx(-0.75 / np.log(2))
    assert out["spearman"] == pytest.approx(1.0)


def _tiny_model():
    return diffusion.ScoreModel(
        diffusion.DiffusionConfig(
            image_shape=(8, 8, 1), base=8, multipliers=(1, 2), attention=False
        )
    )


@pytest.mark.slow
def test_training_lowers_the_loss_and_keeps_an_average(key):
    model = _tiny_model()
    params = diffusion.init(model, key)
    images = jax.random.randint(key, (32, 8, 8, 1), 0, 4).astype(jnp.uint8) * 60
    loss = diffusion.denoising_loss(model)
    optimizer = train.with_ema(train.make_optimizer(3e-3, optimizer="adam"), 0.9)
    step = train.make_train_step(loss, optimizer)
    state = train.init_state(params, optimizer)
    fixed = jax.random.key(7)
    before = float(loss(state.params, images, fixed)[0])
    for _ in range(30):
        state, _ = step(state, images, key)
    assert float(loss(state.params, images, fixed)[0]) < 0.9 * before
    ema = train.ema_params(state.opt_state)
    assert jax.tree.structure(ema) == jax.tree.structure(state.params)
    gap = jax.tree.leaves(
        jax.tree.map(lambda a, b: jnp.abs(a - b).max(), ema, state.params)
    )
    assert 0 < max(float(g) for g in gap)
    with pytest.raises(ValueError, match="with_ema"):
        train.ema_params(optimizer.init(params)[0])
    with pytest.raises(ValueError, match="decay"):
        train.with_ema(optax.sgd(1.0), 1.0)


def test_model_score_and_bits_per_dim(key):
    # The pipeline test runs the ODE through a UNet; here the conversions.
    model = _tiny_model()
    params = diffusion.init(model, key)
    images = jnp.full((2, 8, 8, 1), 128, jnp.uint8)
    y = diffusion.to_diffusion_space(images)
    np.testing.assert_allclose(y, 2 * (128.5 / 256) - 1, rtol=1e-6)
    # The output conv starts at zero: ε̂ = 0, so the score is 0 too.
    assert float(jnp.abs(diffusion.score(model, params, y, 0.5)).max()) == 0.0
    score_fn = diffusion.score_function(model, params)
    np.testing.assert_allclose(score_fn(y[0], 0.5), 0.0)
    # bits/dim of diffusion space: N(0, I) at y = 0 is 0.5 log(2π) nats per dim in
    # y, minus log 2 for the map from model space, plus 8 bits for the bin width.
    lp = jnp.full((1,), -0.5 * 64 * np.log(2 * np.pi))
    expected = (0.5 * np.log(2 * np.pi) - np.log(2.0)) / np.log(2.0) + 8.0
    np.testing.assert_allclose(diffusion.bits_per_dim(lp, 64), expected, rtol=1e-6)


def test_whole_sets_match_the_batched_functions(key):
    model = _tiny_model()
    params = diffusion.init(model, jax.random.key(3))
    params = jax.tree.map(
        lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), params
    )
    images = jax.random.randint(key, (5, 8, 8, 1), 0, 256).astype(np.uint8)
    images = np.asarray(images)
    score_fn, y = (
        diffusion.score_function(model, params),
        diffusion.to_diffusion_space(images),
    )
    t0s = jnp.array([0.05, 0.5])
    lids = diffusion.flipd_images(model, params, images, t0s, key, batch_size=2)
    assert lids.shape == (5, 2) and isinstance(lids, np.ndarray)
    first = diffusion.flipd_sweep(score_fn, y[:2], t0s, jax.random.fold_in(key, 0),
                                  sde=model.sde, num_probes=1)  # fmt: skip
    np.testing.assert_allclose(lids[:2], first, rtol=1e-4, atol=1e-3)
    log_p, steps = diffusion.log_prob_images(model, params, images[:2], key,
                                             t_min=0.01, tolerance=1e-3)  # fmt: skip
    direct = diffusion.ode_log_prob_batch(score_fn, y[:2], jax.random.fold_in(key, 0),
                                          sde=model.sde, t_min=0.01, rtol=1e-3,
                                          atol=1e-3)  # fmt: skip
    np.testing.assert_allclose(log_p, direct.log_prob, rtol=1e-4)
    assert np.all(steps == direct.num_steps)
    samples = diffusion.sample_images(model, params, key, 3)
    assert samples.shape == (3, 8, 8, 1) and samples.dtype == np.uint8


def test_bad_inputs_say_what_is_wrong(key):
    score_fn, x = _subspace_gaussian()
    with pytest.raises(checks.InputError, match="x"):
        diffusion.flipd(score_fn, x.at[0].set(jnp.nan), 0.1, sde=SDE)
    for t0 in (0.0, 1.5, -0.1):
        with pytest.raises(checks.InputError, match="t0"):
            diffusion.flipd(score_fn, x, t0, sde=SDE)
    with pytest.raises(ValueError, match="num_probes"):
        diffusion.flipd(score_fn, x, 0.1, key, sde=SDE, num_probes=0)
    with pytest.raises(ValueError, match="PRNG key"):
        diffusion.flipd(score_fn, x, 0.1, sde=SDE, num_probes=4)
    with pytest.raises(ValueError, match="probe"):
        diffusion.flipd(score_fn, x, 0.1, key, sde=SDE, num_probes=4, probe="x")
    with pytest.raises(ValueError, match="batch"):
        diffusion.flipd_sweep(score_fn, x, jnp.array([0.1]), sde=SDE)
    with pytest.raises(ValueError, match="t_min"):
        diffusion.ode_log_prob(score_fn, x, sde=SDE, num_probes=None, t_min=0.0)
    with pytest.raises(checks.InputError, match="ys"):
        diffusion.ode_log_prob_batch(
            score_fn, jnp.full((2, D), jnp.nan), sde=SDE, num_probes=None
        )
    # Under jit the checks travel out of the compiled program with checkify.
    jitted = checks.checked(jax.jit(lambda t: diffusion.flipd(score_fn, x, t, sde=SDE)))
    with pytest.raises(checks.InputError, match="t0"):
        jitted(2.0)
    model = _tiny_model()
    with pytest.raises(ValueError, match="batch axis"):
        diffusion.score(model, diffusion.init(model, key), jnp.zeros((8, 8, 1)), 0.5)
    with pytest.raises(ValueError, match="divisible"):
        diffusion.DiffusionConfig(image_shape=(10, 10, 1), multipliers=(1, 2, 2))
