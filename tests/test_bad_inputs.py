"""Bad input over the public API: one table, each case with and without ``jit``.

Every case asserts the error type and that the message names the argument (or the
bad value). Under ``jit`` the call runs through ``jaxood.checks.checked(jax.jit(fn))``:
static checks (shape, dtype) raise at trace time, value checks (NaN, range) through
checkify. Host-only APIs (metrics, data loading, calibration, the batched scoring
loop) are checked without ``jit`` only.
"""

import shutil
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import checks, data, detectors, flows, lid, metrics, vae
from jaxood.checks import InputError
from jaxood.data import DataError, UnknownDatasetError, UnknownSplitError

NAN = float("nan")
FLOW = flows.Glow(
    flows.GlowConfig(image_shape=(4, 4, 1), num_scales=1, steps_per_scale=1, hidden=4)
)
VAE = vae.VAE(
    vae.VAEConfig(
        image_shape=(4, 4, 1),
        latent_dim=2,
        architecture="mlp",
        hidden=(8,),
        likelihood="logistic",
    )
)


class Ctx(NamedTuple):
    flow_params: dict
    x: jax.Array  # (4, 4, 4, 1) model space
    vae_params: dict
    u: jax.Array  # (4, 4, 4, 1) in [0, 1]
    spectrum: lid.Spectrum  # one point, with vectors
    tmp: object


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    x = jax.random.uniform(jax.random.key(0), (4, 4, 4, 1), minval=-0.5, maxval=0.5)
    spectrum = lid.Spectrum(jnp.array([2.0, 1.0]), jnp.eye(2), 2)
    return Ctx(
        flows.init(FLOW, jax.random.key(1), x),
        x,
        vae.init(VAE, jax.random.key(2)),
        x + 0.5,
        spectrum,
        tmp_path_factory.mktemp("bad_inputs"),
    )


class Case(NamedTuple):
    """``build(ctx) -> (fn, args)``; ``fn(*args)`` must raise ``error``."""

    name: str
    build: object
    error: type
    match: str
    jit: bool = True


def _nan(a):
    return a.at[(0,) * a.ndim].set(NAN)


def _dir_file(c):
    path = c.tmp / "a_file"
    path.write_text("not a directory")
    return lambda: data.load("digits", "test", data_dir=path), ()


CASES = [
    # ------------------------------------------------------------------ flows
    Case("flows.log_prob/NaN", lambda c: (
        lambda x: flows.log_prob(FLOW, c.flow_params, x).total, (_nan(c.x),)),
        InputError, r"^x contains 1 NaN or inf"),
    Case("flows.log_prob/0..255", lambda c: (
        lambda x: flows.log_prob(FLOW, c.flow_params, x).total,
        (jnp.full((2, 4, 4, 1), 255.0),)),
        InputError, r"^x has values in \[255, 255\], outside model space \[-0.5"),
    Case("flows.log_prob/bfloat16", lambda c: (
        lambda x: flows.log_prob(FLOW, c.flow_params, x).total,
        (c.x.astype(jnp.bfloat16),)),
        TypeError, r"^x must be floating point .*bfloat16"),
    Case("flows.log_prob/list", lambda c: (
        lambda: flows.log_prob(FLOW, c.flow_params, [[0.0]]).total, ()),
        TypeError, r"^x must be an array, got list"),
    Case("flows.log_prob/empty", lambda c: (
        lambda x: flows.log_prob(FLOW, c.flow_params, x).total, (c.x[:0],)),
        ValueError, r"^x is an empty batch"),
    Case("flows.log_prob/shape", lambda c: (
        lambda x: flows.log_prob(FLOW, c.flow_params, x).total, (c.x[:, :2],)),
        ValueError, r"^x has shape \(4, 2, 4, 1\)"),
    Case("flows.encode/NaN", lambda c: (
        lambda x: flows.encode(FLOW, c.flow_params, x), (_nan(c.x),)),
        InputError, r"^x contains 1 NaN"),
    Case("flows.decode/NaN", lambda c: (
        lambda u: flows.decode(FLOW, c.flow_params, (u,)),
        (jnp.full((2, 2, 2, 4), NAN),)),
        InputError, r"^latents\[0\] contains 32 NaN"),
    Case("flows.sample/num=0", lambda c: (
        lambda: flows.sample(FLOW, c.flow_params, jax.random.key(0), 0), ()),
        ValueError, r"^num must be an integer ≥ 1, got 0"),
    Case("flows.sample/num=2.5", lambda c: (
        lambda: flows.sample(FLOW, c.flow_params, jax.random.key(0), 2.5), ()),
        TypeError, r"^num must be an integer.*2.5"),
    Case("flows.init/one image", lambda c: (
        lambda x: flows.init(FLOW, jax.random.key(0), x), (c.x[:1],)),
        ValueError, r"^x_init must be a batch .* B ≥ 2, got shape \(1, 4, 4, 1\)"),
    Case("flows.init/constant images", lambda c: (
        lambda x: flows.init(FLOW, jax.random.key(0), x),
        (jnp.zeros((8, 4, 4, 1)),)),
        InputError, r"^x_init: \d+ ActNorm/prior dimensions are constant.*dequantize"),
    Case("flows.init/NaN", lambda c: (
        lambda x: flows.init(FLOW, jax.random.key(0), x), (_nan(c.x),)),
        InputError, r"^x_init contains 1 NaN"),
    Case("flows.init/0..255", lambda c: (
        lambda x: flows.init(FLOW, jax.random.key(0), x), (c.x * 255 + 128,)),
        InputError, r"^x_init has values in .*outside model space \[-0.5"),
    Case("flows.log_prob_images/float", lambda c: (
        lambda: flows.log_prob_images(FLOW, c.flow_params, np.asarray(c.x)), ()),
        TypeError, r"images must be a uint8 array.*float32", False),
    Case("flows.log_prob_images/batch_size", lambda c: (
        lambda: flows.log_prob_images(
            FLOW, c.flow_params, np.zeros((2, 4, 4, 1), np.uint8), batch_size=2.5),
        ()), TypeError, r"^batch_size must be an integer", False),
    # -------------------------------------------------------------------- LID
    Case("lid.flow_spectra/NaN", lambda c: (
        lambda x: lid.flow_spectra(FLOW, c.flow_params, x)[0].singular_values,
        (_nan(c.x),)), InputError, r"^x contains 1 NaN"),
    Case("lid.flow_spectra/0..255", lambda c: (
        lambda x: lid.flow_spectra(FLOW, c.flow_params, x)[0].singular_values,
        (c.x * 255 + 128,)), InputError, r"^x has values in .*to_model_space"),
    Case("lid.flow_spectra/chunk_size", lambda c: (
        lambda x: lid.flow_spectra(FLOW, c.flow_params, x, chunk_size=0)[1],
        (c.x,)), ValueError, r"^chunk_size must be an integer ≥ 1, got 0"),
    Case("lid.threshold_lid/tau NaN", lambda c: (
        lambda t: lid.threshold_lid(jnp.ones(3), tau=t), (jnp.float32(NAN),)),
        InputError, r"^tau must be positive and not NaN, got nan"),
    Case("lid.threshold_lid/tau 0", lambda c: (
        lambda t: lid.threshold_lid(jnp.ones(3), tau=t), (jnp.float32(0.0),)),
        InputError, r"^tau must be positive"),
    Case("lid.threshold_lid/NaN spectrum", lambda c: (
        lambda s: lid.threshold_lid(s, 0.0), (jnp.array([NAN, 1.0]),)),
        InputError, r"^singular_values contain 1 NaN"),
    Case("lid.threshold_lid/log_tau NaN", lambda c: (
        lambda t: lid.threshold_lid(jnp.ones(3), t), (jnp.array([0.0, NAN]),)),
        InputError, r"^log_tau contains NaN"),
    Case("lid.calibrate_log_tau/NaN spectra", lambda c: (
        lambda: lid.calibrate_log_tau(jnp.full((2, 3), NAN), 1.0), ()),
        InputError, r"^singular_values contain 6 NaN", False),
    Case("lid.calibrate_log_tau/target NaN", lambda c: (
        lambda: lid.calibrate_log_tau(jnp.ones((2, 3)), NAN), ()),
        ValueError, r"^target nan is outside \[0, 3\]", False),
    Case("lid.lidl/scalar deltas", lambda c: (
        lambda: lid.lidl(c.spectrum, jnp.ones(2), 1.0), ()),
        ValueError, r"^deltas must be a \(S,\) array"),
    Case("lid.lidl/batched spectrum", lambda c: (
        lambda: lid.lidl(lid.Spectrum(c.spectrum.singular_values[None],
                                      c.spectrum.right_vectors[None], 2),
                         jnp.ones(2), jnp.zeros(3)), ()),
        ValueError, r"^spectrum holds singular values of shape \(1, 2\).*vmap"),
    Case("lid.lidl/NaN deltas", lambda c: (
        lambda d: lid.lidl(c.spectrum, jnp.ones(2), d), (jnp.array([0.0, NAN]),)),
        InputError, r"^deltas contains 1 NaN"),
    Case("lid.lpca/D mismatch", lambda c: (
        lambda p, r: lid.lpca(p, r, n_neighbors=5),
        (jnp.ones((4, 3)), jnp.ones((10, 5)))),
        ValueError, r"^points have D = 3 but reference has D = 5"),
    Case("lid.lpca/few reference points", lambda c: (
        lambda p, r: lid.lpca(p, r, n_neighbors=5),
        (jnp.ones((4, 3)), jnp.ones((3, 3)))),
        ValueError, r"^reference has 3 points, fewer than n_neighbors = 5"),
    Case("lid.lpca/1-D points", lambda c: (
        lambda p, r: lid.lpca(p, r, n_neighbors=5),
        (jnp.ones(3), jnp.ones((10, 3)))),
        ValueError, r"^points must be a floating-point \(num_points, D\)"),
    Case("lid.lpca/NaN", lambda c: (
        lambda p, r: lid.lpca(p, r, n_neighbors=5, alpha=1e-3),
        (_nan(jnp.ones((4, 3))), jnp.ones((10, 3)))),
        InputError, r"^points contains 1 NaN"),
    Case("lid.jacobian_spectrum/NaN z", lambda c: (
        lambda z: lid.jacobian_spectrum(jnp.sin, z).singular_values,
        (jnp.array([NAN, 1.0]),)), InputError, r"^z contains 1 NaN"),
    Case("lid.jacobian_spectrum/int z", lambda c: (
        lambda: lid.jacobian_spectrum(jnp.sin, jnp.ones(3, jnp.int32)), ()),
        ValueError, r"^z must be a non-empty floating-point"),
    Case("lid.jacobian_spectrum/expected_dim", lambda c: (
        lambda z: lid.jacobian_spectrum(jnp.sin, z, expected_dim=4).singular_values,
        (jnp.ones(3),)), ValueError, r"^expected_dim is 4 but fn returns 3 values"),
    Case("lid.slq/NaN z", lambda c: (
        lambda z: lid.slq(jnp.sin, z, jax.random.key(0), num_probes=2,
                          num_steps=2).gram.nodes,
        (jnp.array([NAN, 1.0]),)), InputError, r"^z contains 1 NaN"),
    Case("lid.vae_decoder_spectra/NaN", lambda c: (
        lambda x: lid.vae_decoder_spectra(VAE, c.vae_params, x).singular_values,
        (_nan(c.u),)), InputError, r"^x contains 1 NaN"),
    # -------------------------------------------------------------------- VAE
    Case("vae.elbo/NaN", lambda c: (
        lambda x: vae.elbo(VAE, c.vae_params, x, jax.random.key(0)), (_nan(c.u),)),
        InputError, r"^x contains 1 NaN"),
    Case("vae.importance_estimates/0..255", lambda c: (
        lambda x: vae.importance_estimates(VAE, c.vae_params, x, jax.random.key(0),
                                           4)[1], (c.u * 255,)),
        InputError, r"^x has values in .*outside \[0, 1\].*to_unit_interval"),
    Case("vae.elbo/bfloat16", lambda c: (
        lambda x: vae.elbo(VAE, c.vae_params, x, jax.random.key(0)),
        (c.u.astype(jnp.bfloat16),)),
        TypeError, r"^x must be floating point .*bfloat16"),
    Case("vae.elbo/empty", lambda c: (
        lambda x: vae.elbo(VAE, c.vae_params, x, jax.random.key(0)), (c.u[:0],)),
        ValueError, r"^x is an empty batch"),
    Case("vae.importance_estimates/num_samples", lambda c: (
        lambda x: vae.importance_estimates(VAE, c.vae_params, x, jax.random.key(0),
                                           0)[1], (c.u,)),
        ValueError, r"^num_samples must be an integer ≥ 1, got 0"),
    Case("vae.sample/num=0", lambda c: (
        lambda: vae.sample(VAE, c.vae_params, jax.random.key(0), 0), ()),
        ValueError, r"^num must be an integer ≥ 1"),
    # -------------------------------------------------------------- detectors
    Case("detectors.typicality.fit/NaN", lambda c: (
        lambda n: detectors.typicality().fit(n)["entropy"], (jnp.array([1.0, NAN]),)),
        InputError, r"^nll_in contains 1 NaN"),
    Case("detectors.bootstrap_threshold/group_size", lambda c: (
        lambda n: detectors.bootstrap_threshold(
            jax.random.key(0), {"entropy": 1.0}, n, 2.5), (jnp.ones(10),)),
        TypeError, r"^group_size must be an integer.*2.5"),
    Case("detectors.klods/NaN", lambda c: (
        lambda u: detectors.klods(u).full, (_nan(jnp.ones((2, 2, 4, 4, 1))),)),
        InputError, r"^latents contains 1 NaN"),
    Case("detectors.hole_indicator/NaN", lambda c: (
        detectors.hole_indicator, (jnp.array([[1.0, NAN]]),)),
        InputError, r"^decoder_log_likelihoods contains 1 NaN"),
    Case("detectors.hole_indicator/one sample", lambda c: (
        detectors.hole_indicator, (jnp.ones((3, 1)),)),
        ValueError, r"^decoder_log_likelihoods must be \(B, N\) with N ≥ 2"),
    Case("detectors.likelihood_ratio/shapes", lambda c: (
        detectors.likelihood_ratio, (jnp.ones(3), jnp.ones(4))),
        ValueError, r"^log_p_in \(3,\) and log_p_general \(4,\)"),
    Case("detectors.waic/one member", lambda c: (
        detectors.waic, (jnp.ones((1, 3)),)),
        ValueError, r"^log_p must be \(K, B\) with K ≥ 2"),
    Case("detectors.final_scale/1-D", lambda c: (
        detectors.final_scale, (jnp.ones(3),)),
        ValueError, r"^per_scale must be \(B, L\)"),
    # ---------------------------------------------------------------- metrics
    Case("metrics.auroc/empty", lambda c: (
        lambda: metrics.auroc([], [1.0]), ()),
        ValueError, r"^scores_in is empty", False),
    Case("metrics.auroc/NaN", lambda c: (
        lambda: metrics.auroc([1.0], [NAN]), ()),
        ValueError, r"^scores_out has 1 NaN/inf", False),
    Case("metrics.auroc/2-D", lambda c: (
        lambda: metrics.auroc(np.ones((2, 2)), [1.0]), ()),
        ValueError, r"^scores_in must be a 1-D array", False),
    Case("metrics.fpr_at_tpr/tpr", lambda c: (
        lambda: metrics.fpr_at_tpr([0.0], [1.0], 0.0), ()),
        ValueError, r"^tpr must be in \(0, 1\], got 0.0", False),
    Case("metrics.roc_curve/positive", lambda c: (
        lambda: metrics.roc_curve([0.0], [1.0], positive="oods"), ()),
        ValueError, r"^positive must be 'ood' or 'id', got 'oods'", False),
    Case("metrics.group_indices/group_size", lambda c: (
        lambda: metrics.group_indices(10, 2.5, 0), ()),
        TypeError, r"^group_size must be an integer, got 2.5", False),
    # ------------------------------------------------------------------- data
    Case("data.load/unknown dataset", lambda c: (
        lambda: data.load("nope_dataset", "test", data_dir=c.tmp), ()),
        UnknownDatasetError, r"^Unknown dataset 'nope_dataset'", False),
    Case("data.load/unknown split", lambda c: (
        lambda: data.load("uniform_noise", "train", data_dir=c.tmp), ()),
        UnknownSplitError, r"has no split 'train'", False),
    Case("data.load/data_dir is a file", _dir_file,
         DataError, r"^data_dir .*a_file is a file, not a directory", False),
    Case("data.to_model_space/list", lambda c: (
        lambda: data.to_model_space([[1, 2]]), ()),
        TypeError, r"^images must be a uint8 array .*got list", False),
    Case("data.to_model_space/float", lambda c: (
        lambda x: data.to_model_space(x), (c.x,)),
        TypeError, r"^images must be uint8 pixels.*float32"),
    Case("data.dequantize/3-D", lambda c: (
        lambda: data.dequantize(jax.random.key(0), np.zeros((2, 4, 4), np.uint8)), ()),
        ValueError, r"^images must have shape \(N, H, W, C\)"),
    Case("data.check_model_space/NaN", lambda c: (
        lambda x: data.check_model_space(x), (_nan(c.x),)),
        InputError, r"^x contains 1 NaN"),
    Case("data.bits_per_dim/num_dims", lambda c: (
        lambda: data.bits_per_dim(jnp.ones(2), 0), ()),
        ValueError, r"^num_dims must be positive, got 0", False),
    Case("data.mutate/rate", lambda c: (
        lambda: data.mutate(jax.random.key(0), np.zeros((1, 4, 4, 1), np.uint8), 2.0),
        ()), ValueError, r"mutation rate must lie in \[0, 1\], got 2.0", False),
]  # fmt: skip
PARAMS = [
    pytest.param(case, jit, id=f"{case.name}{'-jit' if jit else ''}")
    for case in CASES
    for jit in ((False, True) if case.jit else (False,))
]


@pytest.mark.parametrize(("case", "jit"), PARAMS)
def test_bad_input(ctx, case, jit):
    fn, args = case.build(ctx)
    if jit:
        fn = checks.checked(jax.jit(fn))
    with pytest.raises(case.error, match=case.match) as info:
        jax.block_until_ready(fn(*args))
    # JAX may append its traceback-filtering note after a line of dashes.
    message = str(info.value).split("\n-----")[0]
    assert "\n" not in message.strip(), f"not one line: {message!r}"


def test_checks_are_free_without_checkify(ctx):
    """Under a plain jit the checks compile away: NaN in, NaN out, no error."""
    out = jax.jit(lambda x: flows.log_prob(FLOW, ctx.flow_params, x).total)(_nan(ctx.x))
    assert bool(jnp.isnan(out[0])) and bool(jnp.all(jnp.isfinite(out[1:])))


def test_a_program_with_checks_is_the_same_program_on_every_trace(ctx):
    """Traced twice, a checked function lowers to identical text (no per-process
    check counter inside), so the persistent compilation cache can hit."""

    def lowered():
        fn = lambda x: flows.log_prob(FLOW, ctx.flow_params, x).total  # noqa: E731
        return jax.jit(fn).lower(ctx.x).as_text()

    first = lowered()
    checks.finite(jnp.ones(3), "y")  # eager: no trace, no code
    jax.jit(lambda y: checks.finite(y, "y"))(jnp.ones(3))  # another traced check
    assert lowered() == first


def test_vmap_and_grad_keep_the_checks(ctx):
    """The checks survive vmap and grad and fire under checkify."""

    def loss(x):
        per = jax.vmap(lambda v: flows.log_prob(FLOW, ctx.flow_params, v).total)
        return jnp.sum(per(x))

    grad = checks.checked(jax.jit(jax.grad(loss)))
    assert bool(jnp.all(jnp.isfinite(grad(ctx.x))))
    with pytest.raises(InputError, match="^x contains 1 NaN"):
        grad(_nan(ctx.x))


def test_init_refuses_what_would_give_a_degenerate_prior(ctx):
    """One image repeated: every dimension is constant over the batch."""
    with pytest.raises(InputError, match="constant over the batch of 4 images"):
        flows.init(FLOW, jax.random.key(0), jnp.repeat(ctx.x[:1], 4, axis=0))


def _small_cache(data_dir, tmp_path):
    """A private copy of the prepared ``digits`` with its own cache."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "digits", root / "digits")
    images, labels = data.load("digits", "test", data_dir=root, with_labels=True)
    cache = next((root / "jaxood_cache" / "digits").iterdir())
    return root, cache, images, labels


def _load_warns(root, match):
    with pytest.warns(UserWarning, match=match):
        return data.load("digits", "test", data_dir=root, with_labels=True)


@pytest.mark.slow
def test_stale_or_corrupt_cache_is_rebuilt(data_dir, tmp_path):
    root, cache, images, labels = _small_cache(data_dir, tmp_path)
    # Stale: 3 images next to all the labels.
    np.save(cache / "test_images.npy", images[:3])
    got, got_labels = _load_warns(root, r"test_images.npy \(3 images but labels")
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)
    # Truncated file: numpy cannot read it.
    raw = (cache / "test_images.npy").read_bytes()
    (cache / "test_images.npy").write_bytes(raw[: len(raw) // 2])
    got, _ = _load_warns(root, r"test_images.npy \(unreadable")
    np.testing.assert_array_equal(got, images)
    # Same shapes, other values: only the checksum can tell.
    np.save(cache / "test_images.npy", 255 - images[..., 0])
    got, _ = _load_warns(root, "SHA-256")
    np.testing.assert_array_equal(got, images)
    # A verified cache loads silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            data.load("digits", "test", data_dir=root), images
        )
