"""Data parallelism on 4 forced host devices (a subprocess: the device count is
fixed when the backend starts): sharded results equal single-device ones, outputs
stay sharded, meshes from ``jax.make_mesh`` (explicit axes) and ``Mesh(...)``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import forced_devices_env

ROOT = Path(__file__).resolve().parent.parent
# One subprocess compiles and trains every model family on 4 forced devices (about
# 50 s on 2 idle cores, a quarter of the inner loop): make test runs it, the
# `-m "not slow"` loop leaves it out.
pytestmark = pytest.mark.slow

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxood import flows, lid, parallel

assert jax.device_count() == 4
out = {}
model = flows.Glow(flows.GlowConfig(image_shape=(8, 8, 1), num_scales=2,
                                    steps_per_scale=2, hidden=8))  # = _model()
params = model.random_params(jax.random.key(0))
x = jax.random.uniform(jax.random.key(1), (8, 8, 8, 1), minval=-0.5, maxval=0.5)
ref = flows.log_prob(model, params, x).total
rel = lambda a, b: float(jnp.max(jnp.abs(a - b) / jnp.abs(b)))

explicit = parallel.data_mesh()
auto = Mesh(np.array(jax.devices()), ("data",))
for name, mesh in (("explicit", explicit), ("auto", auto)):
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    lp = flows.log_prob(model, parallel.replicate(mesh, params), xs).total
    out[f"log_prob_{name}"] = rel(lp, ref)
    out[f"log_prob_{name}_devices"] = len(lp.sharding.device_set)
    out[f"log_prob_{name}_spec"] = str(lp.sharding.spec)
out["describe"] = parallel.describe(explicit)

# Spline knots are built from the network output and must keep its sharding.
spline = flows.Glow(flows.GlowConfig(image_shape=(8, 8, 1), num_scales=2,
                                     steps_per_scale=1, hidden=8, coupling="spline"))
sp = jax.tree.map(lambda a: a + 0.1, spline.random_params(jax.random.key(2)))
xs = jax.device_put(x, NamedSharding(explicit, P("data")))
with jax.set_mesh(explicit):  # as the experiments run: fresh arrays get mesh types
    lp = flows.log_prob(spline, parallel.replicate(explicit, sp), xs).total
out["spline_explicit"] = rel(lp, flows.log_prob(spline, sp, x).total)

# shard_map over the pure function, on a sharded batch.
xs = parallel.shard_batch(explicit, x)
per_device = jax.shard_map(lambda v: flows.log_prob(model, params, v).total,
                           mesh=explicit, in_specs=P("data"), out_specs=P("data"))
out["shard_map"] = rel(jax.jit(per_device)(xs), ref)

# A set of 10 images in batches of 6 on 4 devices: batches round up to 8, the
# last one is padded, nothing is dropped.
images = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 1), dtype=np.uint8)
single = flows.log_prob_images(model, params, images, batch_size=6)
sharded = flows.log_prob_images(model, params, images, batch_size=6, mesh=explicit)
out["images_shape"] = list(sharded["total"].shape)
out["images"] = float(np.max(np.abs(sharded["total"] - single["total"])
                             / np.abs(single["total"])))

# LID spectra: each device its own images, the output sharded like the input.
spectra = lid.flow_spectra(model, params, x[:4])
for name, mesh in (("explicit", explicit), ("auto", auto)):
    xs = jax.device_put(x[:4], NamedSharding(mesh, P("data")))
    got = lid.flow_spectra(model, params, xs)
    pairs = zip(jax.tree.leaves(got), jax.tree.leaves(spectra))
    out[f"spectra_{name}"] = max(float(jnp.max(jnp.abs(a - b))) for a, b in pairs)
    out[f"spectra_{name}_spec"] = str(jax.tree.leaves(got)[0].sharding.spec)

# Training: 5 steps with the batch split over the devices (params replicated)
# against 5 on one device, from params restored from a 1-device checkpoint; the
# sharded result is saved for the 1-device parent to restore.
import os
from jaxood import checkpoint, train
start = checkpoint.load_params(os.environ["CKPT"] + "/start", params)
optimizer = train.make_optimizer(1e-3, optimizer="adam")
step = train.make_train_step(flows.losses.nll_loss(model), optimizer)
batches = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 8, 1), dtype=np.uint8)
finals = {}
for name, mesh in (("single", None), ("explicit", explicit)):
    state = train.init_state(jax.tree.map(jnp.asarray, start), optimizer)
    if mesh is not None:
        state = parallel.replicate(mesh, state)
    for batch in batches:
        if mesh is not None:
            batch = parallel.shard_batch(mesh, batch)
        state, _ = step(state, batch, jax.random.key(7))
    finals[name] = state.params
for name in ("explicit",):  # (an auto-axes mesh: covered by log_prob above)
    pairs = zip(jax.tree.leaves(finals[name]), jax.tree.leaves(finals["single"]))
    out[f"train_{name}"] = max(
        float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in pairs)
    out[f"train_{name}_replicated"] = all(
        leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(finals[name]))
checkpoint.save_params(os.environ["CKPT"] + "/trained", finals["explicit"])
trained = flows.log_prob(model, finals["explicit"], x).total
out["trained_log_p"] = np.asarray(trained).tolist()

# The same train step built for the mesh (mesh=..., or the mesh set with
# jax.set_mesh) takes host batches and splits them itself.
import contextlib
for name, kwargs in (("mesh_arg", dict(mesh=explicit)), ("set_mesh", {})):
    with jax.set_mesh(explicit) if not kwargs else contextlib.nullcontext():
        mesh_step = train.make_train_step(
            flows.losses.nll_loss(model), optimizer, **kwargs)
        state = train.init_state(jax.tree.map(jnp.asarray, start), optimizer)
        for batch in batches:
            state, _ = mesh_step(state, batch, jax.random.key(7))
    pairs = zip(jax.tree.leaves(state.params), jax.tree.leaves(finals["single"]))
    out[f"train_{name}"] = max(
        float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in pairs)
    out[f"train_{name}_replicated"] = all(
        leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state.params))

# VAEs (conv + Gaussian, MLP + vMF): ELBO, importance sampling; likelihood regret
# (an inner optimisation, the costliest to compile) on the conv VAE.
from jaxood import detectors, diffusion, vae, data
pixels = np.random.default_rng(2).random((8, 28, 28, 1)).astype(np.float32)
for arch, latent in (("conv", "gaussian"), ("mlp", "vmf")):
    m = vae.VAE(vae.VAEConfig(architecture=arch, latent=latent, latent_dim=4,
                              hidden=(16, 8)))
    p = vae.init(m, jax.random.key(3))
    key = jax.random.key(4)
    def scores(x, params):
        lik, iwae = vae.importance_estimates(m, params, x, key, num_samples=4,
                                             chunk_size=2)
        out = {"elbo": vae.elbo(m, params, x, key), "iwae": iwae}
        if arch == "conv":
            regret = detectors.likelihood_regret(m, params, x, key, steps=2,
                                                 num_samples=4, chunk_size=2)
            # The regret is a difference of two IWAE bounds (hundreds of nats):
            # compared on their scale.
            out |= {"regret": regret.regret, "scale": regret.log_p_before}
        return out
    ref = scores(pixels, p)
    got = scores(parallel.shard_batch(explicit, pixels),
                 parallel.replicate(explicit, p))
    for k in ("elbo", "iwae", "regret")[: 3 if arch == "conv" else 2]:
        scale = jnp.abs(ref["scale" if k == "regret" else k])
        out[f"vae_{arch}_{k}"] = float(jnp.max(jnp.abs(got[k] - ref[k]) / scale))
        out[f"vae_{arch}_{k}_spec"] = str(got[k].sharding.spec)

# Diffusion: probability-flow ODE likelihood and FLIPD sweeps, under jax.set_mesh
# as the experiments run them (sharded inputs without it: the flows above).
dm = diffusion.ScoreModel(diffusion.DiffusionConfig(base=8, multipliers=(1, 2)))
dp = diffusion.init(dm, jax.random.key(5))
ys = diffusion.to_diffusion_space(
    np.random.default_rng(3).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8))
def diffusion_scores(ys, params):
    fn = diffusion.score_function(dm, params)
    key = jax.random.key(6)
    lp = diffusion.ode_log_prob_batch(fn, ys, key, sde=dm.sde, t_min=0.01,
                                      num_probes=1, rtol=1e-2, atol=1e-2)
    lid_ = diffusion.flipd_sweep(fn, ys, jnp.array([0.01, 0.1]), key, sde=dm.sde,
                                 num_probes=1)
    return {"ode": lp.log_prob, "flipd": lid_}
ref = diffusion_scores(ys, dp)
with jax.set_mesh(explicit):
    got = diffusion_scores(parallel.shard_batch(explicit, ys),
                           parallel.replicate(explicit, dp))
for k in ref:
    out[f"diffusion_{k}"] = float(jnp.max(jnp.abs(got[k] - ref[k]) / jnp.abs(ref[k])))
    out[f"diffusion_{k}_spec"] = str(got[k].sharding.spec)

# Ren et al.'s mutation keeps the batch sharding (random draws placed like it).
u8 = np.random.default_rng(4).integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
mutated = jax.jit(lambda im: data.mutate(jax.random.key(8), im, 0.3))
out["mutate"] = bool(jnp.all(
    mutated(parallel.shard_batch(explicit, u8)) == mutated(u8)))

# Batched LAPACK not split over the mesh runs on one device inside single_device.
with jax.set_mesh(explicit):
    with parallel.single_device():
        w = jnp.linalg.eigvalsh(jnp.asarray(np.stack([np.eye(3)] * 4)))
        out["single_device"] = [len(w.sharding.device_set), float(w[-1, -1])]
    out["replicated_outside"] = len(jnp.asarray(np.eye(3)).sharding.device_set)
out["noop_on_one_device"] = type(
    parallel.single_device(parallel.data_mesh(jax.devices()[:1]))).__name__

try:
    parallel.shard_batch(explicit, x[:6])
except ValueError as error:
    out["bad_batch"] = str(error)
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 1-device checkpoint for the 4-device run to start from."""
    import jax

    from jaxood import checkpoint

    folder = tmp_path_factory.mktemp("checkpoints")
    checkpoint.save_params(folder / "start", _model().random_params(jax.random.key(5)))
    return folder


def _model():
    from jaxood import flows

    config = flows.GlowConfig(
        image_shape=(8, 8, 1), num_scales=2, steps_per_scale=2, hidden=8
    )
    return flows.Glow(config)


@pytest.fixture(scope="module")
def results(checkpoints):
    env = forced_devices_env(4, CKPT=str(checkpoints), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.mark.parametrize("mesh", ["explicit", "auto"])
def test_sharded_log_prob_equals_single_device(results, mesh):
    assert results[f"log_prob_{mesh}"] < 1e-5
    assert results[f"log_prob_{mesh}_devices"] == 4


def test_outputs_keep_the_batch_sharding_on_explicit_meshes(results):
    assert results["log_prob_explicit_spec"] == "P('data',)"
    assert results["spectra_explicit_spec"].startswith("P('data',")
    assert "4 device(s)" in results["describe"]


def test_spline_couplings_on_an_explicit_mesh(results):
    assert results["spline_explicit"] < 1e-5


def test_shard_map_of_log_prob(results):
    assert results["shard_map"] < 1e-5


def test_a_ragged_set_gives_the_single_device_scores(results):
    assert results["images_shape"] == [10]
    assert results["images"] < 1e-5


@pytest.mark.parametrize("mesh", ["explicit", "auto"])
def test_lid_spectra_are_identical(results, mesh):
    assert results[f"spectra_{mesh}"] < 1e-5


def test_a_batch_that_does_not_split_is_a_clear_error(results):
    assert "a batch of 6 does not split over 4 devices" in results["bad_batch"]


@pytest.mark.parametrize("mesh", ["explicit", "mesh_arg", "set_mesh"])
def test_sharded_training_equals_single_device(results, mesh):
    assert results[f"train_{mesh}"] < 1e-5
    assert results[f"train_{mesh}_replicated"]


def test_a_4_device_checkpoint_restores_on_one_device(results, checkpoints):
    """Started from a 1-device checkpoint, trained on 4 devices, saved, restored
    here on one: the same log-likelihoods."""
    import jax
    import numpy as np

    from jaxood import checkpoint, flows

    model = _model()
    params = checkpoint.load_params(
        checkpoints / "trained", model.random_params(jax.random.key(0))
    )
    x = jax.random.uniform(jax.random.key(1), (8, 8, 8, 1), minval=-0.5, maxval=0.5)
    np.testing.assert_allclose(
        flows.log_prob(model, params, x).total, results["trained_log_p"], rtol=1e-6
    )


@pytest.mark.parametrize(
    ("arch", "score"),
    [("conv", "elbo"), ("conv", "iwae"), ("conv", "regret"), ("mlp", "elbo"),
     ("mlp", "iwae")],
)  # fmt: skip
def test_vae_scores_are_the_single_device_ones(results, arch, score):
    """Conv + Gaussian and MLP + vMF (a rejection sampler per example)."""
    assert results[f"vae_{arch}_{score}"] < 1e-5
    assert results[f"vae_{arch}_{score}_spec"] == "P('data',)"


@pytest.mark.parametrize("score", ["ode", "flipd"])
def test_diffusion_scores_are_the_single_device_ones(results, score):
    """The adaptive ODE solve and FLIPD under ``jax.set_mesh``."""
    assert results[f"diffusion_{score}"] < 1e-5
    assert results[f"diffusion_{score}_spec"].startswith("P('data',")


def test_single_device_takes_lapack_work_off_a_cpu_mesh(results):
    assert results["single_device"] == [1, 1.0]
    assert results["replicated_outside"] == 4  # what single_device is for
    assert results["noop_on_one_device"] == "nullcontext"


def test_mutation_keeps_the_batch_sharding(results):
    assert results["mutate"]
