"""Flow LID speed: jaxood vs the layer6 PyTorch path, SLQ vs exact sweeps, lPCA vs
scikit-dimension; same run, same CPU.

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.lid_speed \\
        --torch-python .venv-bench/bin/python [--only slq]

(``make bench`` runs it all; ``--only slq`` or ``--only lpca`` re-measures one part
and merges it into the existing results; ``--quick`` runs every part at tiny sizes as
a smoke check and writes nothing.) Three measurements, each against its goal:

1. Exact flow LID per image, D = 1024 (32×32×1 Glow, L=3, K=8, hidden 64): jaxood's
   ``jax.linearize`` + chunked vmapped JVPs + SVD vs ``torch.func.jacfwd`` of
   normflows' Glow decoder + ``eigh(JᵀJ)`` (``benchmarks/normflows_lid.py``), random
   init on both sides. Goal: jaxood ≥ 2× faster.
2. Two-sided stochastic Lanczos quadrature (``lid.flow_slq``) against the exact
   spectrum, both sweeping 50 thresholds ℓ = log τ in linspace(-10, 5) and 50 LIDL
   scales δ in linspace(-8, 2): on the TRAINED shipped Fashion-MNIST Glow (D = 1024,
   test images) and on a random-init 32×32×3 Glow (D = 3072). Time per image, error of
   the mean LID at a typical τ/δ (where the exact mean LID is D/6, as at the trained
   flow's calibrated τ) and its worst over the grid, per-image error, and how often
   the error indicator covers the true error. Goals: ≥ 5× faster at D = 1024 and
   ≥ 20× at D = 3072 with the mean within 2 %.
3. ``jaxood.lid.lpca`` vs ``skdim.id.lPCA(ver="FO")`` (``benchmarks/skdim_lpca.py``)
   on 10,000 Fashion-MNIST training images: time and agreement per point.

The random flows' zero-initialised coupling output convs are redrawn from N(0, 0.02²)
(otherwise every coupling is linear and so is the flow), then ActNorm/prior-
initialised on data: for D = 3072, three zero-padded Fashion-MNIST images as the R, G,
B channels (no RGB dataset is prepared offline). Times are medians over batches,
compilation excluded (reported apart). Writes ``benchmarks/results/lid_speed.json``
and regenerates ``benchmarks/README.md``. How many probes and steps SLQ would need
for its goals, whatever a step costs: ``benchmarks/slq_limits.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from benchmarks import readme
from jaxood import checkpoint, data, detectors, flows, lid, metrics

HERE = Path(__file__).resolve().parent
SHIPPED = HERE.parent / "experiments" / "checkpoints" / "glow_fmnist"
PERTURB = 0.02  # std of the redrawn coupling output convs
LOG_TAUS = np.linspace(-10.0, 5.0, 50)  # the reference's LID-curve sweep
DELTAS = np.linspace(-8.0, 2.0, 50)  # the LIDL sweep of experiments/lid_pipeline.py
TYPICAL_FRACTION = 1 / 6  # mean LID / D at the trained flow's calibrated τ
SPEEDUP_GOALS = {1024: 5.0, 3072: 20.0}
LPCA = dict(n_neighbors=1000, alpha=1e-3)  # as experiments/lid_pipeline.py

FULL = dict(
    arch=(8, 64),  # K steps per scale, hidden channels
    layer6_images=3,
    slq_images={1024: 16, 3072: 16},
    slq_batch={1024: 8, 3072: 4},
    slq_settings={1024: [(4, 40), (8, 80), (4, 120)], 3072: [(4, 40), (8, 80)]},
    lpca_reference=10_000,
    lpca_queries=128,
    auroc_images=500,  # per set: FMNIST test, MNIST-5k; plus the validation images
    auroc_validation=128,
    auroc_slq=(4, 40),
    auroc_batch=8,
)
QUICK = dict(
    arch=(2, 16),  # a smoke check of the code paths, not of the numbers
    layer6_images=1,
    slq_images={1024: 2, 3072: 1},
    slq_batch={1024: 2, 3072: 1},
    slq_settings={1024: [(2, 4)], 3072: [(2, 4)]},
    lpca_reference=300,
    lpca_queries=8,
    auroc_images=4,
    auroc_validation=4,
    auroc_slq=(2, 4),
    auroc_batch=2,
)


# ------------------------------------------------------------------ helpers


def compile_ahead(fn, args: tuple):
    """Ahead-of-time compilation: (executable, seconds). Nothing is run."""
    tic = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - tic


def time_interleaved(runs: dict) -> tuple[dict, dict]:
    """Times ``{name: (executable, [args, ...])}``, one call per args tuple,
    interleaved across names so that load from other processes hits all alike.

    Returns:
        ``({name: median seconds}, {name: [outputs]})``.
    """
    times = {name: [] for name in runs}
    outputs = {name: [] for name in runs}
    for i in range(len(next(iter(runs.values()))[1])):
        for name, (fn, args_list) in runs.items():
            tic = time.perf_counter()
            outputs[name].append(jax.block_until_ready(fn(*args_list[i])))
            times[name].append(time.perf_counter() - tic)
    return {k: statistics.median(v) for k, v in times.items()}, outputs


def _perturb(params, key, std: float):
    """Redraws every coupling net's zero-initialised output kernel from N(0, std²)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        names = [getattr(k, "key", None) for k in path]
        if "conv_out" in names and names[-1] == "kernel":
            sub = jax.random.fold_in(key, i)
            leaf = std * jax.random.normal(sub, leaf.shape, leaf.dtype)
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def _flow(image_shape, num_scales: int, arch, x_init, key):
    model = flows.Glow(
        flows.GlowConfig(
            image_shape=image_shape,
            num_scales=num_scales,
            steps_per_scale=arch[0],
            hidden=arch[1],
        )
    )
    # Perturb before the data-dependent init, so ActNorms and priors standardise
    # the perturbed flow (as flows.init does for an unperturbed one).
    params = _perturb(model.random_params(key), jax.random.fold_in(key, 1), PERTURB)
    return model, model.data_init(params, jnp.asarray(x_init))


def _images(image_shape, count: int, key):
    """Dequantized model-space Fashion-MNIST (as RGB: 3 padded images per image)."""
    h, _, c = image_shape
    images = data.load("fashion_mnist", "train")[: count * c]
    if h != images.shape[1]:
        images = data.pad(images, h)
    images = images.reshape(count, c, h, h).transpose(0, 2, 3, 1)
    return np.asarray(data.dequantize(key, images))


def _latents(model, params, x):
    fn = jax.jit(lambda p, v: lid.flatten_latents(model.forward(p, v).latents))
    return fn(params, x)


# ------------------------------------------------------------------ part 1


def exact_vs_layer6(python: str, arch, images: int, threads: int) -> dict:
    """Exact spectrum per image at D = 1024, jaxood vs torch.func.jacfwd + eigh."""
    shape = (32, 32, 1)
    key = jax.random.key(0)
    x = jax.random.uniform(key, (64 + images, *shape)) - 0.5
    model, params = _flow(shape, 3, arch, x[:64], jax.random.key(1))
    z = _latents(model, params, x[64:])

    def spectrum(p, v):
        decode = lid.flow_decoder(model, p)
        return lid.jacobian_spectrum(decode, v).singular_values

    compiled, compile_s = compile_ahead(spectrum, (params, z[0]))
    seconds, out = time_interleaved({"jaxood": (compiled, [(params, v) for v in z])})
    s = np.asarray(out["jaxood"][0])
    command = [
        python, str(HERE / "normflows_lid.py"), "--num-scales", "3",
        "--steps", str(arch[0]), "--hidden", str(arch[1]), "--size", "32",
        "--images", str(images), "--threads", str(threads),
        "--perturb", str(PERTURB),
    ]  # fmt: skip
    theirs = _subprocess_json(command)
    ours = {
        "seconds_per_image": seconds["jaxood"],
        "compile_seconds": compile_s,
        "method": "jax.linearize + lax.map of vmapped JVPs (chunk 128) + SVD of J",
        "singular_value_range": [float(s.min()), float(s.max())],
    }
    return {
        "num_dims": int(z.shape[1]),
        "images_timed": images,
        "jaxood": ours,
        "layer6_torch": theirs,
        "speedup": theirs["seconds_per_image"] / ours["seconds_per_image"],
        "goal": 2.0,
    }


def _subprocess_json(command: list[str]) -> dict:
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ part 2, 3


def random_glow(image_shape, num_scales, arch, count):
    x = _images(image_shape, 256 + count, jax.random.key(2))
    model, params = _flow(image_shape, num_scales, arch, x[:256], jax.random.key(3))
    return model, params, x[256:]


def trained_glow(count: int):
    """The shipped Fashion-MNIST Glow of ``make run`` and dequantized test images."""
    model = flows.Glow(
        flows.GlowConfig(image_shape=(32, 32, 1), steps_per_scale=8, hidden=64)
    )
    params = checkpoint.load_params(
        str(SHIPPED / "id" / "params"), model.random_params(jax.random.key(0))
    )
    images = data.resize(data.load("fashion_mnist", "test")[:count], 32)
    return model, params, data.to_model_space(images)


def _exact_sweep(model):
    """Exact: spectrum with vectors, then every τ and every δ."""

    def fn(p, x):
        spectrum, z0 = lid.flow_spectra(model, p, x, vectors=True)
        counts = lid.threshold_lid(spectrum.singular_values, jnp.asarray(LOG_TAUS))
        smooth = jax.vmap(lid.lidl, in_axes=(0, 0, None))(
            spectrum, z0, jnp.asarray(DELTAS)
        )
        return counts.astype(jnp.float32), smooth

    return fn


def _slq_sweep(model, probes: int, steps: int, batch: int):
    """Two-sided SLQ: one quadrature per image, then every τ and every δ."""

    def fn(p, x, key):
        q, _ = lid.flow_slq(
            model, p, x, key, num_probes=probes, num_steps=steps, batch_size=batch
        )
        counts = jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(
            q, jnp.asarray(LOG_TAUS)
        )
        smooth = jax.vmap(lid.lidl_from, in_axes=(0, None))(q, jnp.asarray(DELTAS))
        return counts, smooth

    return fn


def _typical(exact: np.ndarray, grid: np.ndarray, fraction: float) -> int:
    """Grid index where the exact mean LID is nearest ``fraction`` × D."""
    return int(np.argmin(np.abs(exact.mean(0) - fraction * exact.max())))


def sweep_accuracy(estimate, error, exact, grid, num_dims: int) -> dict:
    """Errors of an SLQ sweep (images × grid) against the exact one."""
    k = _typical(exact, grid, TYPICAL_FRACTION)
    mean_exact, mean_est = exact.mean(0), estimate.mean(0)
    relative = np.abs(mean_est - mean_exact) / np.maximum(mean_exact, 1e-9)
    # Relative errors of counts near 0 say nothing: the grid points where the
    # exact mean LID is at least 1 % of D.
    meaningful = mean_exact >= 0.01 * num_dims
    worst = int(np.flatnonzero(meaningful)[np.argmax(relative[meaningful])])
    per_image = np.abs(estimate - exact) / np.maximum(exact, 1.0)
    return {
        "typical": float(grid[k]),
        "exact_mean_at_typical": float(mean_exact[k]),
        "error_of_mean_at_typical": float(relative[k]),
        "per_image_error_at_typical": float(per_image[:, k].mean()),
        "error_indicator_at_typical": float(error[:, k].mean()),
        "max_error_of_mean_on_grid": float(relative[worst]),
        "worst_grid_point": float(grid[worst]),
        "coverage": float(np.mean(np.abs(estimate - exact) <= error + 1e-3)),
    }


def slq_vs_exact(model, params, x, settings, batch: int) -> dict:
    """Exact vs SLQ sweeps of 50 τ and 50 δ; times per image, errors, coverage."""
    num_dims = model.config.num_dims
    batches = [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)]
    keys = [jax.random.key(100 + i) for i in range(len(batches))]
    runs, compile_s = {}, {}
    args = [(params, b) for b in batches]
    runs["exact"] = (compile_ahead(_exact_sweep(model), args[0]), args)
    for probes, steps in settings:
        name = f"{probes}x{steps}"
        fn = _slq_sweep(model, probes, steps, batch)
        args = [(params, b, k) for b, k in zip(batches, keys, strict=True)]
        runs[name] = (compile_ahead(fn, args[0]), args)
    compile_s = {name: run[0][1] for name, run in runs.items()}
    times, outputs = time_interleaved(
        {name: (run[0][0], run[1]) for name, run in runs.items()}
    )
    exact_counts = np.concatenate([np.asarray(o[0]) for o in outputs["exact"]])
    exact_lidl = np.concatenate([np.asarray(o[1]) for o in outputs["exact"]])
    exact_s = times["exact"] / batch
    rows = []
    for probes, steps in settings:
        name = f"{probes}x{steps}"
        out = outputs[name]
        seconds = times[name] / batch

        def cat(i, j, out=out):
            return np.concatenate([np.asarray(o[i][j]) for o in out])

        rows.append({
            "num_probes": probes,
            "num_steps": steps,
            "seconds_per_image": seconds,
            "compile_seconds": compile_s[name],
            "speedup": exact_s / seconds,
            "threshold": sweep_accuracy(cat(0, 0), cat(0, 1), exact_counts, LOG_TAUS,
                                   num_dims),
            "lidl": sweep_accuracy(cat(1, 0), cat(1, 1), exact_lidl, DELTAS, num_dims),
        })  # fmt: skip
    return {
        "num_dims": num_dims,
        "images": len(batches) * batch,
        "batch": batch,
        "exact": {
            "seconds_per_image": exact_s,
            "compile_seconds": compile_s["exact"],
            "method": "flow_spectra(vectors=True) + threshold_lid + lidl",
        },
        "slq": rows,
        "goal": {"speedup": SPEEDUP_GOALS[num_dims], "error_of_mean": 0.02},
    }


def slq_part(size: dict, log) -> dict:
    """Part 2 on the trained D = 1024 Glow and a random-init D = 3072 one."""
    out = {}
    log("slq_1024", "2/3 SLQ vs exact, trained Glow, D = 1024")
    model, params, x = trained_glow(size["slq_images"][1024])
    out["1024"] = slq_vs_exact(
        model, params, x, size["slq_settings"][1024], size["slq_batch"][1024]
    )
    out["1024"]["flow"] = "shipped Fashion-MNIST Glow (trained), test images"
    log("slq_3072", "2/3 SLQ vs exact, random-init Glow, D = 3072")
    model, params, x = random_glow(
        (32, 32, 3), 3, size["arch"], size["slq_images"][3072]
    )
    out["3072"] = slq_vs_exact(
        model, params, x, size["slq_settings"][3072], size["slq_batch"][3072]
    )
    out["3072"]["flow"] = "random-init Glow (perturbed couplings), RGB of FMNIST"
    return out


def auroc_log_tau() -> float:
    """The calibrated log τ of the published Fashion-MNIST LID run."""
    lid_run = HERE.parent / "experiments" / "results" / "glow_fmnist_lid.json"
    return json.loads(lid_run.read_text())["log_tau"]


def auroc_sets(n: int, v: int):
    """The shipped Glow and the model-space sets of the AUROC part: the first ``n``
    Fashion-MNIST test images, the next ``v`` (validation) and the first ``n`` of
    MNIST-5k."""
    model, params, fmnist = trained_glow(n + v)
    mnist = data.to_model_space(data.resize(data.load("mnist_5k", "all")[:n], 32))
    sets = {"id_test": fmnist[:n], "validation": fmnist[n:], "ood": mnist}
    return model, params, sets


def auroc_key(start: int):
    """The SLQ key of the batch of the AUROC part that starts at image ``start``
    (split per image by ``lid.flow_slq``)."""
    return jax.random.key(1000 + start)


def dual_threshold_aurocs(log_p: dict, lids: dict) -> dict:
    """LID-only, dual-threshold envelope and rank-AND AUROCs (OOD positive) of the
    sets ``id_test`` against ``ood``, rank-AND's CDFs fit on ``validation``; both
    dicts map those set names to per-image arrays."""
    rank_and = detectors.rank_and_detector()
    stats = rank_and.fit(log_p["validation"], lids["validation"])
    envelope = detectors.envelope_auroc(log_p["id_test"], lids["id_test"],
                                        log_p["ood"], lids["ood"])  # fmt: skip
    return {
        "lid_only": metrics.auroc(
            detectors.lid_only(lids["id_test"]), detectors.lid_only(lids["ood"])
        ),
        "envelope": float(envelope["reported"]),
        "rank_and": metrics.auroc(
            rank_and.score(stats, log_p["id_test"], lids["id_test"]),
            rank_and.score(stats, log_p["ood"], lids["ood"]),
        ),
    }


def auroc_part(size: dict, log) -> dict:
    """What matters for OOD: on the same images, the LID-only, dual-threshold
    envelope and rank-AND AUROCs of FMNIST test vs MNIST-5k with exact and with SLQ
    LID, under the shipped Glow at the calibrated log τ of the published LID run
    (rank-AND CDFs from further FMNIST test images, disjoint from the evaluated ones).
    """
    n, v, batch = size["auroc_images"], size["auroc_validation"], size["auroc_batch"]
    probes, steps = size["auroc_slq"]
    log_tau, (model, params, sets) = auroc_log_tau(), auroc_sets(n, v)

    @jax.jit
    def exact(x):
        spectrum, _ = lid.flow_spectra(model, params, x)
        return lid.threshold_lid(spectrum.singular_values, log_tau)

    def slq(x, key):
        q, _ = lid.flow_slq(model, params, x, key, num_probes=probes,
                            num_steps=steps, batch_size=batch)  # fmt: skip
        return jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(
            q, jnp.asarray([log_tau])
        ).value[:, 0]

    out, seconds = {}, {"exact": 0.0, "slq": 0.0}
    for name, images in sets.items():
        log(f"auroc_{name}", f"3/4 AUROC part: {name}, {len(images)} images")
        x = images
        rows = {"exact": [], "slq": [], "log_p": []}
        for i in range(0, len(x), batch):
            b = x[i : i + batch]
            tic = time.perf_counter()
            rows["exact"].append(np.asarray(exact(b)))
            seconds["exact"] += time.perf_counter() - tic
            tic = time.perf_counter()
            rows["slq"].append(np.asarray(slq(b, auroc_key(i))))
            seconds["slq"] += time.perf_counter() - tic
            rows["log_p"].append(np.asarray(flows.log_prob(model, params, b).total))
        out[name] = {k: np.concatenate(v).astype(np.float64) for k, v in rows.items()}
    log_p = {k: out[k]["log_p"] for k in out}
    aurocs = {m: dual_threshold_aurocs(log_p, {k: out[k][m] for k in out})
              for m in ("exact", "slq")}  # fmt: skip
    total = sum(len(x) for x in sets.values())
    return {
        "images_per_set": n,
        "validation_images": v,
        "log_tau": log_tau,
        "slq": {"num_probes": probes, "num_steps": steps},
        "seconds_per_image": {k: t / total for k, t in seconds.items()},
        "mean_lid": {
            m: {k: float(out[k][m].mean()) for k in out} for m in ("exact", "slq")
        },
        "auroc": aurocs,
        "largest_difference": max(
            abs(aurocs["exact"][k] - aurocs["slq"][k]) for k in aurocs["exact"]
        ),
        "goal": 0.01,
    }


# ------------------------------------------------------------------ part 4


def lpca_vs_skdim(python: str, reference: int, queries: int, threads: int) -> dict:
    """jaxood.lid.lpca vs skdim lPCA(ver="FO").fit_pw, same points and neighbours."""
    images = data.load("fashion_mnist", "train")[:reference]
    points = np.asarray(data.to_model_space(images)).reshape(reference, -1)
    n_neighbors = min(LPCA["n_neighbors"], reference)

    def fn(q, r):
        return lid.lpca(
            q,
            r,
            n_neighbors=n_neighbors,
            alpha=LPCA["alpha"],
            chunk_size=min(64, queries),
        )

    args = (points[:queries], points)
    compiled, compile_s = compile_ahead(fn, args)
    seconds, out = time_interleaved({"jaxood": (compiled, [args] * 2)})
    ours = np.asarray(out["jaxood"][0])
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "points.npy", points)
        theirs_json = _subprocess_json([
            python, str(HERE / "skdim_lpca.py"), str(Path(tmp) / "points.npy"),
            "--queries", str(queries), "--n-neighbors", str(n_neighbors),
            "--alpha", str(LPCA["alpha"]), "--threads", str(threads),
            "--out", str(Path(tmp) / "estimates.npy"),
        ])  # fmt: skip
        theirs = np.load(Path(tmp) / "estimates.npy")
    difference = np.abs(ours.astype(np.int64) - theirs)
    return {
        "reference_points": reference,
        "queries": queries,
        "num_dims": points.shape[1],
        "n_neighbors": n_neighbors,
        "alpha": LPCA["alpha"],
        "jaxood": {
            "seconds": seconds["jaxood"],
            "compile_seconds": compile_s,
            "mean": float(ours.mean()),
        },
        "skdim": theirs_json,
        "speedup": theirs_json["seconds"] / seconds["jaxood"],
        "fraction_identical": float(np.mean(difference == 0)),
        "max_abs_difference": int(difference.max()),
        "mean_abs_difference": float(difference.mean()),
    }


# ------------------------------------------------------------------ main


def _rerun_part(args, size: dict) -> None:
    """Re-measures part ``args.only`` and merges it into the results file."""
    out = HERE / "results" / "lid_speed.json"
    result = json.loads(out.read_text())
    tic = time.perf_counter()

    def log(part: str, message: str) -> None:
        result["load_average"][part] = os.getloadavg()[0]
        print(f"[{time.perf_counter() - tic:4.0f} s] {message}")

    threads = os.cpu_count() or 1
    if args.only == "lpca":
        log("lpca", "lPCA vs scikit-dimension")
        result["lpca"] = lpca_vs_skdim(
            args.torch_python, size["lpca_reference"], size["lpca_queries"], threads
        )
    elif args.only == "auroc":
        result["auroc"] = auroc_part(size, log)
    else:
        # The CG-based parts of earlier versions measured code that is gone.
        for stale in ("matrix_free", "cg_loop_overhead", "delta_sweep"):
            result.pop(stale, None)
        result["load_average"] = {
            k: v
            for k, v in result["load_average"].items()
            if not k.startswith(("matrix_free", "cg_loop", "delta_sweep"))
        }
        result["slq"] = slq_part(size, log)
        result["versions"]["jax"] = jax.__version__
    print(readme.lid_section(result))
    if not args.quick:
        out.write_text(json.dumps(result, indent=2))
        readme.write()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lid_speed")
    parser.add_argument("--torch-python", default=".venv-bench/bin/python")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, prints, writes nothing"
    )
    parser.add_argument(
        "--only",
        choices=("slq", "lpca", "auroc"),
        help="re-measure one part and merge it into the existing results",
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.only:
        _rerun_part(args, size)
        return
    threads = os.cpu_count() or 1
    load_start = os.getloadavg()
    tic = time.perf_counter()

    loads = {}

    def log(part: str, message: str) -> None:
        # The CPU is shared: the 1-minute load average says how much.
        loads[part] = os.getloadavg()[0]
        print(f"[{time.perf_counter() - tic:4.0f} s, load {loads[part]:.1f}] {message}")

    result = {
        "machine": f"{platform.machine()}, {threads} cores, {jax.devices()[0]}",
        "versions": {
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "numpy": np.__version__,
        },
        "settings": {
            "flow": f"Glow K={size['arch'][0]}, hidden {size['arch'][1]}, affine "
            "coupling, LU 1x1 conv",
            "perturb_std": PERTURB,
            "jacobian_chunk_size": 128,
            "threads": threads,
        },
    }
    log("exact_vs_layer6", "1/4 exact LID, jaxood vs torch.func.jacfwd + eigh")
    result["exact_vs_layer6"] = exact_vs_layer6(
        args.torch_python, size["arch"], size["layer6_images"], threads
    )
    result["slq"] = slq_part(size, log)
    log("lpca", "4/4 lPCA vs scikit-dimension")
    result["lpca"] = lpca_vs_skdim(
        args.torch_python, size["lpca_reference"], size["lpca_queries"], threads
    )
    result["versions"].update(
        torch=result["exact_vs_layer6"]["layer6_torch"]["torch"],
        normflows=result["exact_vs_layer6"]["layer6_torch"]["normflows"],
        skdim=result["lpca"]["skdim"]["skdim"],
        sklearn=result["lpca"]["skdim"]["sklearn"],
        numba=result["lpca"]["skdim"]["numba"],
    )
    log("end", "done")
    result["load_average"] = {"start": load_start[0], **loads}
    result["total_seconds"] = time.perf_counter() - tic
    print(readme.lid_section(result))
    if args.quick:
        return
    out = HERE / "results" / "lid_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    readme.write()


if __name__ == "__main__":
    main()
