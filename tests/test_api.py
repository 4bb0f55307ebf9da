"""The library surface a JAX user sees: lazy subpackages, jitted pure functions that
trace once, single examples under vmap, donation, and shipped checkpoints."""

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxood
from jaxood import (
    batching,
    checkpoint,
    checks,
    data,
    detectors,
    flows,
    lid,
    train,
    vae,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(image_shape=(8, 8, 1), num_scales=2, steps_per_scale=2, hidden=8)
PUBLIC = (
    "checkpoint",
    "checks",
    "data",
    "detectors",
    "diffusion",
    "flows",
    "io",
    "lid",
    "metrics",
    "plots",
    "train",
    "vae",
)


def _batch(key, n=8, shape=(8, 8, 1)):
    return jax.random.uniform(key, (n, *shape), minval=-0.5, maxval=0.5)


@pytest.fixture(scope="module")
def small_flow():
    model = flows.Glow(flows.GlowConfig(**SMALL))
    x = _batch(jax.random.key(0))
    return model, flows.init(model, jax.random.key(1), x), x


# ----------------------------------------------------------------- package surface


def test_import_jaxood_is_cheap_and_subpackages_load_lazily():
    code = (
        "import sys, jaxood\n"
        "assert 'jax' not in sys.modules, 'import jaxood imported jax'\n"
        "assert 'jaxood.flows' not in sys.modules\n"
        f"for name in {PUBLIC!r}:\n"
        "    assert getattr(jaxood, name).__name__ == 'jaxood.' + name\n"
        "assert 'orbax.checkpoint' in sys.modules  # jaxood.checkpoint did load\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_models_detectors_and_lid_import_without_tfds_or_tfp():
    """An accelerator host with only JAX and Flax scores arrays it was sent: the data
    loaders and the vMF's Bessel functions import their packages on first use."""
    code = (
        "import sys\n"
        "sys.modules['tensorflow_datasets'] = None  # any import of it now fails\n"
        "sys.modules['tensorflow_probability'] = None\n"
        "from jaxood import data, detectors, flows, lid, vae\n"
        "assert data.to_model_space is not None and 'load' in dir(data)\n"
        "try:\n"
        "    data.load\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('data.load did not need tensorflow_datasets')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_data_prepare_is_the_function_after_its_module_is_imported():
    import jaxood.data.preparation  # noqa: F401  (binds data.preparation only)

    assert callable(data.prepare) and data.prepare.__module__.endswith("preparation")
    assert data.load.__module__ == "jaxood.data.datasets"


def test_subpackages_are_attributes_listed_by_dir_and_all():
    for name in PUBLIC:
        assert getattr(jaxood, name) is sys.modules[f"jaxood.{name}"]
        assert name in dir(jaxood) and name in jaxood.__all__
    with pytest.raises(AttributeError, match="no attribute 'flow'"):
        jaxood.flow  # noqa: B018


def test_flows_exports_losses_scoring_and_the_bijector_contract():
    assert flows.losses.nll_loss is not None  # no explicit import of the submodule
    assert callable(flows.log_prob_images)
    for bijector in (flows.ActNorm, flows.InvertibleConv1x1, flows.Coupling):
        assert issubclass(bijector, flows.Bijector)
    assert issubclass(flows.Squeeze, flows.Bijector)


def test_no_private_back_doors_and_no_links_outside_the_repository():
    pattern = re.compile(r"shared/|specs/|methods\.md|\.\./shared")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for path in sorted((ROOT / "jaxood").rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


# ----------------------------------------------------------------- flows


def test_log_prob_and_encode_are_jitted_and_take_single_examples(small_flow):
    model, params, x = small_flow
    batched = flows.log_prob(model, params, x)
    one = flows.log_prob(model, params, x[0])
    assert one.total.shape == () and one.per_scale.shape == (2,)
    np.testing.assert_allclose(one.total, batched.total[0], rtol=1e-6)
    totals = jax.vmap(lambda v: flows.log_prob(model, params, v).total)(x)
    np.testing.assert_allclose(totals, batched.total, rtol=1e-5)
    latents = jax.vmap(lambda v: flows.encode(model, params, v))(x)
    for u, expected, shape in zip(
        latents, batched.latents, model.latent_shapes, strict=True
    ):
        assert u.shape == (8, *shape)
        np.testing.assert_allclose(u, expected, rtol=1e-5, atol=1e-5)
    single = tuple(u[0] for u in batched.latents)
    np.testing.assert_allclose(flows.decode(model, params, single), x[0], atol=1e-4)


def test_log_prob_checks_values_in_plain_calls_and_under_checkify(small_flow):
    """A plain call checks values (no copy of x to numpy: reductions on the device);
    under a plain jit the check costs nothing, under checks.checked it raises."""
    model, params, _ = small_flow
    far = jnp.full((2, 8, 8, 1), 100.0)
    with pytest.raises(checks.InputError, match="^x has values in .*model space"):
        flows.log_prob(model, params, far)
    with pytest.raises(ValueError, match="outside model space"):
        data.check_model_space(far)
    total = jax.jit(lambda x: flows.log_prob(model, params, x).total)
    assert total(far).shape == (2,)
    with pytest.raises(checks.InputError, match="^x has values in"):
        checks.checked(total)(far)
    with pytest.raises(ValueError, match=r"x has shape \(2, 8, 8\).*expects"):
        flows.log_prob(model, params, jnp.zeros((2, 8, 8)))
    with pytest.raises(TypeError, match="x must be floating point"):
        flows.log_prob(model, params, jnp.zeros((2, 8, 8, 1), jnp.uint8))


def test_log_prob_images_checks_dtype_and_shape(small_flow):
    model, params, _ = small_flow
    with pytest.raises(TypeError, match="uint8"):
        flows.log_prob_images(model, params, np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"images have shape \(2, 4, 4, 1\)"):
        flows.log_prob_images(model, params, np.zeros((2, 4, 4, 1), np.uint8))
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), np.uint8)
    out = flows.log_prob_images(model, params, images, batch_size=2)
    expected = flows.log_prob(model, params, data.to_model_space(images)).total
    np.testing.assert_allclose(out["total"], expected, rtol=1e-6)


@pytest.mark.slow  # op-by-op reference: tens of seconds
@pytest.mark.parametrize("config", [dict(), dict(step="realnvp", coupling="spline")])
def test_jitted_data_init_equals_the_op_by_op_one(config, key):
    # One step per scale: the op-by-op reference costs ~10 s per step on 2 cores.
    model = flows.Glow(flows.GlowConfig(**SMALL | {"steps_per_scale": 1}, **config))
    x = _batch(key, 32)
    fast = flows.init(model, jax.random.key(1), x)
    with jax.disable_jit():  # the old path: every op dispatched eagerly
        slow = model.data_init(model.random_params(jax.random.key(1)), x)
    assert jax.tree.structure(fast) == jax.tree.structure(slow)
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # op-by-op reference: tens of seconds
def test_data_init_traces_each_step_once_per_scale(key, monkeypatch):
    """The K steps of a scale share one compiled function (a scan), and a second
    init of the same model reuses it: far fewer calls than one per step."""
    config = flows.GlowConfig(
        image_shape=(8, 8, 1), num_scales=2, steps_per_scale=4, hidden=6
    )
    model = flows.Glow(config)
    calls = []
    original = flows.Coupling.data_init

    def counting(self, params, x):
        calls.append(x.shape)
        return original(self, params, x)

    monkeypatch.setattr(flows.Coupling, "data_init", counting)
    for seed in (1, 2):
        flows.init(model, jax.random.key(seed), _batch(key, 16))
    # Op by op: 2 inits x 2 scales x 4 steps = 16 calls.
    assert len(calls) <= 2 * config.num_scales


@pytest.mark.slow
def test_shipped_checkpoints_restore_with_unchanged_log_likelihoods(data_dir):
    """Params structure, names and values are those of the shipped checkpoints; the
    numbers were recorded before the NNX split/merge helper replaced three ad-hoc
    ones."""
    model = flows.Glow(
        flows.GlowConfig(image_shape=(32, 32, 1), steps_per_scale=8, hidden=64)
    )
    template = model.random_params(jax.random.key(0))
    images = data.resize(data.load("fashion_mnist", "test", data_dir=data_dir)[:4], 32)
    x = data.to_model_space(images)
    expected = {
        "id": [2664.9311523438, 2605.6843261719, 3844.9272460938, 3612.5766601562],
        "general": [1738.6416015625, 1286.1614990234, 2846.7045898438, 2176.0756835938],
    }
    for stage, totals in expected.items():
        path = ROOT / "experiments" / "checkpoints" / "glow_fmnist" / stage / "params"
        params = checkpoint.load_params(path, template)
        assert jax.tree.structure(params) == jax.tree.structure(template)
        lp = flows.log_prob(model, params, x)
        np.testing.assert_allclose(lp.total, totals, rtol=1e-6)
        if stage == "id":
            np.testing.assert_allclose(
                lp.per_scale[0], [2231.9353, 444.5078, -11.5121], atol=1e-3
            )


# ----------------------------------------------------------------- lid, vae, detectors


def test_jacobian_spectrum_default_chunk_fits_small_latents(key):
    w = jax.random.normal(key, (20, 12))
    spectrum = lid.jacobian_spectrum(lambda z: jnp.tanh(w @ z), jnp.ones(12))
    assert spectrum.singular_values.shape == (12,)
    expected = jnp.linalg.svd(
        jax.jacfwd(lambda z: jnp.tanh(w @ z))(jnp.ones(12)), compute_uv=False
    )
    np.testing.assert_allclose(spectrum.singular_values, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="z must be a non-empty floating-point"):
        lid.jacobian_spectrum(lambda z: w @ z, jnp.ones(12, jnp.int32))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        lid.jacobian_spectrum(lambda z: w @ z, jnp.ones(12), chunk_size=0)
    full = lid.jacobian_spectrum(lambda z: w @ z, jnp.ones(12), vectors=True)
    with pytest.raises(ValueError, match="z has 3 values.*latent of 12"):
        lid.lidl(full, jnp.ones(3), jnp.zeros(2))


def test_slq_is_jitted_and_matches_op_by_op(key):
    d = 12
    w = jax.random.normal(key, (d, d)) / jnp.sqrt(d)
    calls = []

    def fn(z):
        calls.append(1)
        return jnp.tanh(w @ z)

    z = 0.3 * jnp.ones(d)
    first = lid.slq(fn, z, key, num_probes=4, num_steps=6)
    traced = len(calls)
    again = lid.slq(fn, z, key, num_probes=4, num_steps=6)
    assert len(calls) == traced  # compiled once, not re-run op by op
    np.testing.assert_array_equal(first.gram.nodes, again.gram.nodes)
    with jax.disable_jit():
        slow = lid.slq(fn, z, key, num_probes=4, num_steps=6)
    np.testing.assert_allclose(first.gram.nodes, slow.gram.nodes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        first.gram.weights, slow.gram.weights, rtol=1e-3, atol=1e-4
    )


@pytest.mark.slow  # op-by-op reference: tens of seconds
def test_vae_elbo_is_jitted_and_matches_op_by_op(key, monkeypatch):
    model = vae.VAE(vae.VAEConfig(image_shape=(28, 28, 1), latent_dim=3))
    params = vae.init(model, jax.random.key(1))
    x = jax.random.uniform(key, (4, 28, 28, 1))
    model_module = sys.modules["jaxood.vae.model"]
    calls = []
    original = model_module.elbo_terms

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(model_module, "elbo_terms", counting)
    first = vae.elbo(model, params, x, jax.random.key(2))
    vae.elbo(model, params, x, jax.random.key(3))
    assert len(calls) == 1  # traced once, not run op by op on every call
    with jax.disable_jit():
        slow = vae.elbo(model, params, x, jax.random.key(2))
    np.testing.assert_allclose(first, slow, rtol=1e-5)


def test_typicality_fit_is_jittable():
    typicality = detectors.typicality()
    nll = jnp.array([3.0, 5.0, 4.0, 6.0])
    stats = jax.jit(typicality.fit)(nll)
    np.testing.assert_allclose(stats["entropy"], 4.5)
    scores = jax.jit(lambda a, b: typicality.score(typicality.fit(a), b))(nll, nll)
    np.testing.assert_allclose(scores, [1.5, 0.5, 0.5, 1.5])
    with pytest.raises(ValueError, match="NaN"):  # concrete input: checked
        typicality.fit(nll.at[0].set(jnp.nan))


# ----------------------------------------------------------------- train, batching


def test_train_step_donates_the_state_and_keeps_the_callers_params():
    params = {"w": jnp.arange(4.0), "b": jnp.ones(())}
    optimizer = train.make_optimizer(1e-2, optimizer="adam")

    def loss_fn(p, batch, key):
        del key
        return jnp.sum((p["w"] * batch + p["b"]) ** 2), {}

    step = train.make_train_step(loss_fn, optimizer)
    state = train.init_state(params, optimizer)
    old_leaves = jax.tree.leaves(state)
    # Warnings are errors under pytest: an unusable donation would fail here.
    new_state, metrics = step(state, jnp.ones(4), jax.random.key(0))
    assert bool(metrics["finite"]) and int(new_state.step) == 1
    assert all(leaf.is_deleted() for leaf in old_leaves)
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(params))
    np.testing.assert_array_equal(params["w"], jnp.arange(4.0))


def test_map_batches_copies_to_the_host_once(monkeypatch):
    transfers = []
    device_get = jax.device_get

    def counting(tree):
        transfers.append(1)
        return device_get(tree)

    monkeypatch.setattr(jax, "device_get", counting)
    x = np.arange(10.0, dtype=np.float32)[:, None]
    out = batching.map_batches(
        lambda i, b: {"double": 2.0 * jnp.asarray(b), "index": jnp.full(4, i)}, x, 4
    )
    assert len(transfers) == 1
    assert isinstance(out["double"], np.ndarray) and out["double"].shape == (10, 1)
    np.testing.assert_array_equal(out["double"][:, 0], 2.0 * np.arange(10))
    np.testing.assert_array_equal(out["index"], [0] * 4 + [1] * 4 + [2] * 2)
    shapes = []  # a set smaller than one batch is not padded up to it
    batching.map_batches(
        lambda i, b: shapes.append(b.shape) or jnp.asarray(b), x[:3], 4
    )
    assert shapes == [(3, 1)]


def test_no_module_imports_a_private_name_of_another_subpackage():
    """Pipelines and subpackages use the public API (no ``_log_prob`` back doors)."""
    pattern = re.compile(r"from jaxood\.(\w+)[\w.]* import ([^\n]*\b_[a-z]\w*)")
    for path in (ROOT / "jaxood").rglob("*.py"):
        own = path.relative_to(ROOT / "jaxood").parts[0]
        for package, names in pattern.findall(path.read_text()):
            assert package == own.removesuffix(".py"), f"{path}: {names}"
    for path in (ROOT / "experiments").rglob("*.py"):
        assert not pattern.search(path.read_text()), path
