"""FLIPD speed and accuracy on the shipped Fashion-MNIST diffusion model (D = 784).

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.flipd_speed

Per image, compilation excluded (ahead-of-time, reported apart), medians over
batches, Fashion-MNIST test images at bin midpoints: FLIPD with the exact trace
(784 JVPs in chunks of 128), FLIPD with 8 Rademacher probes, the normal bundle
(K = 4D = 3,136 score evaluations and an SVD) on the same model, and the exact flow
LID (Jacobian spectrum) of the shipped Fashion-MNIST Glow (D = 1024); then one call
sweeping 50 values of t0 over 64 images. Accuracy: Spearman ρ between 8-probe and
exact-trace FLIPD over the images (and the normal bundle's ρ to exact FLIPD).
Goals: Hutchinson FLIPD ≥ 100× faster per image than the normal bundle, ρ ≥ 0.9.
``--quick`` runs tiny sizes on a random model and writes nothing. Writes
``benchmarks/results/flipd_speed.json`` and regenerates ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from benchmarks import readme
from benchmarks.lid_speed import compile_ahead, time_interleaved, trained_glow
from experiments import configured, diffusion_pipeline
from experiments.configs import diffusion_fmnist
from jaxood import checkpoint, data, diffusion, lid

SHIPPED = configured.ROOT / "experiments" / "checkpoints" / "diffusion_fmnist"
T0 = 0.05  # inside the range the FLIPD authors use (0.01 to 0.2)
FULL = dict(images=32, batch_exact=4, batch_hutchinson=16, bundle=3, sweep=64, glow=3)
QUICK = dict(images=4, batch_exact=2, batch_hutchinson=2, bundle=1, sweep=4, glow=1)


def shipped_diffusion(quick: bool):
    """The shipped Fashion-MNIST diffusion model (EMA), or a random one (quick)."""
    config = diffusion_fmnist.get_config("")
    model = diffusion_pipeline.build_model(config)
    params = diffusion.init(model, jax.random.key(0))
    if not quick:
        params = checkpoint.load_params(str(SHIPPED / "score_model" / "params"), params)
    return model, params


def diffusion_header(quick: bool) -> dict:
    """The machine, jax and the model of a benchmark of :func:`shipped_diffusion`."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0]}",
        "jax": jax.__version__,
        "model": "random-init diffusion model"
        if quick
        else "shipped Fashion-MNIST diffusion model (EMA)",
    }


def _per_image(fn, args_list, batch: int) -> tuple[float, float, list]:
    compiled, seconds = compile_ahead(fn, args_list[0])
    median, outputs = time_interleaved({"fn": (compiled, args_list)})
    return median["fn"] / batch, seconds, outputs["fn"]


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman ρ of ``a`` and the first ``len(a)`` of ``b``; None under 3 points
    or when either is constant (ρ undefined; JSON has no NaN)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b[: len(a)]) == 0:
        return None
    return float(stats.spearmanr(a, b[: len(a)]).statistic)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flipd_speed")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    tic, load = time.perf_counter(), [os.getloadavg()[0]]
    model, params = shipped_diffusion(args.quick)
    score_fn, sde = diffusion.score_function(model, params), model.sde
    images = data.load("fashion_mnist", "test")[: max(size["images"], size["sweep"])]
    y = diffusion.to_diffusion_space(images)
    key, t0 = jax.random.key(1), jnp.array([T0])

    def batches(n: int, count: int):
        return [(y[i : i + n],) for i in range(0, count, n)]

    def sweep(num_probes, t0s):
        return lambda x: diffusion.flipd_sweep(
            score_fn, x, t0s, key, sde=sde, num_probes=num_probes
        )

    timings = {}
    exact = _per_image(sweep(None, t0), batches(size["batch_exact"], size["images"]),
                       size["batch_exact"])  # fmt: skip
    hutch = _per_image(sweep(8, t0), batches(size["batch_hutchinson"],
                       size["images"]), size["batch_hutchinson"])  # fmt: skip
    load.append(os.getloadavg()[0])

    def bundle(x):
        return diffusion.normal_bundle_lid(score_fn, x, key, sde=sde, t0=T0)

    nb = _per_image(bundle, [(y[i],) for i in range(size["bundle"])], 1)
    glow, glow_params, glow_x = trained_glow(size["glow"])
    spectra = _per_image(
        lambda x: lid.flow_spectra(glow, glow_params, x, chunk_size=128)[0],
        [(glow_x[i : i + 1],) for i in range(size["glow"])],
        1,
    )
    t0s = jnp.geomspace(1e-3, 1.0, 50, dtype=jnp.float32)
    sweep50 = _per_image(sweep(1, t0s), [(y[: size["sweep"]],)] * 2, 1)
    load.append(os.getloadavg()[0])
    for name, (seconds, compile_seconds, _) in {
        "flipd_exact": exact, "flipd_hutchinson_8": hutch, "normal_bundle": nb,
        "glow_exact_lid": spectra, "sweep_50_t0_64_images_one_call": sweep50,
    }.items():  # fmt: skip
        timings[name] = {"seconds": seconds, "compile_seconds": compile_seconds}
    exact_values = np.concatenate([np.asarray(o)[:, 0] for o in exact[2]])
    hutch_values = np.concatenate([np.asarray(o)[:, 0] for o in hutch[2]])
    bundle_values = np.array([int(o.lid) for o in nb[2]])
    result = {
        **diffusion_header(args.quick),
        "t0": T0,
        "images": size["images"],
        "timings": timings,
        "speedup_hutchinson_vs_bundle": timings["normal_bundle"]["seconds"]
        / timings["flipd_hutchinson_8"]["seconds"],
        "spearman_hutchinson_vs_exact": _spearman(hutch_values, exact_values),
        "spearman_bundle_vs_exact": _spearman(bundle_values, exact_values),
        "mean_flipd_exact": float(exact_values.mean()),
        "mean_flipd_hutchinson_8": float(hutch_values.mean()),
        "mean_abs_difference": float(np.mean(np.abs(hutch_values - exact_values))),
        "normal_bundle_lid": bundle_values.tolist(),
        "goal": {"speedup": 100.0, "spearman": 0.9},
        "load_average": load,
        "total_seconds": time.perf_counter() - tic,
    }
    result["quick"] = args.quick
    readme.publish("flipd_speed", result, readme.flipd_section)


if __name__ == "__main__":
    main()
