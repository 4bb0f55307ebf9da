"""Flow LID speed: jaxood vs the layer6 PyTorch path, matrix-free vs exact, δ sweeps,
lPCA vs scikit-dimension; same run, same CPU.

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.lid_speed \\
        --torch-python .venv-bench/bin/python

(``make bench`` runs it so; ``--quick`` runs every part at tiny sizes as a smoke
check and writes nothing.) Four measurements, each against its goal:

1. Exact flow LID per image, D = 1024 (32×32×1 Glow, L=3, K=8, hidden 64): jaxood's
   ``jax.linearize`` + chunked vmapped JVPs + SVD vs ``torch.func.jacfwd`` of
   normflows' Glow decoder + ``eigh(JᵀJ)`` (``benchmarks/normflows_lid.py``), random
   init on both sides. Goal: jaxood ≥ 2× faster.
2. ``lidl_matrix_free`` (Hutchinson + CG) vs exact LIDL (``jacobian_spectrum`` with
   vectors + ``lidl``) at one δ, D = 784 (28×28×1, L=2) and D = 3072 (32×32×3, L=3),
   over a grid of probes × CG iterations: time per image, error of the mean LID, CG
   residual. Goal: ≥ 20× faster with the mean within 2 %.
3. A 50-scale δ sweep vs one δ: exact (one SVD serves every δ; goal ≤ 1.2× the time)
   and matrix-free (for information: its cost grows with the number of δ).
4. ``jaxood.lid.lpca`` vs ``skdim.id.lPCA(ver="FO")`` (``benchmarks/skdim_lpca.py``)
   on 10,000 Fashion-MNIST training images: time and agreement per point.

The flows are random-init Glows whose zero-initialised coupling output convs are
redrawn from N(0, 0.02²) (otherwise every coupling is linear and so is the flow),
then ActNorm/prior-initialised on data: dequantized Fashion-MNIST for D = 784; for
D = 3072, three zero-padded Fashion-MNIST images as the R, G, B channels (no RGB
dataset is prepared offline). A trained flow's spectrum is wider and CG converges
more slowly on it, so the matrix-free numbers here are on the optimistic side.
Times are medians over images, compilation excluded (reported apart). Writes
``benchmarks/results/lid_speed.json`` and regenerates ``benchmarks/README.md``.
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
from jaxood import data, flows, lid

HERE = Path(__file__).resolve().parent
PERTURB = 0.02  # std of the redrawn coupling output convs
DELTA = -2.0  # LIDL scale of part 2: LID ≈ 0.75 D here, neither 0 nor D
SWEEP = (-10.0, 5.0, 50)  # the reference's LID-curve sweep: linspace(-10, 5, 50)
LPCA = dict(n_neighbors=1000, alpha=1e-3)  # as experiments/lid_pipeline.py

FULL = dict(
    arch=(8, 64),  # K steps per scale, hidden channels
    layer6_images=3,
    mf_images={784: 5, 3072: 3},
    mf_grid={
        784: [(4, 8), (4, 32), (32, 8), (8, 16), (16, 32), (32, 64)],
        3072: [(4, 8), (8, 16), (16, 32)],
    },
    sweep_images=3,
    sweep_mf=(8, 16),
    sweep_mf_images=1,
    lpca_reference=10_000,
    lpca_queries=128,
)
QUICK = dict(
    arch=(2, 16),  # a smoke check of the code paths, not of the numbers
    layer6_images=1,
    mf_images={784: 2, 3072: 1},
    mf_grid={784: [(2, 2)], 3072: [(2, 2)]},
    sweep_images=1,
    sweep_mf=(2, 2),
    sweep_mf_images=1,
    lpca_reference=300,
    lpca_queries=8,
)


# ------------------------------------------------------------------ helpers


def _compile(fn, args: tuple):
    """Ahead-of-time compilation: (executable, seconds). Nothing is run."""
    tic = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - tic


def _time(runs: dict) -> tuple[dict, dict]:
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

    compiled, compile_s = _compile(spectrum, (params, z[0]))
    seconds, out = _time({"jaxood": (compiled, [(params, v) for v in z])})
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


def _setup(image_shape, num_scales, arch, count):
    x = _images(image_shape, 256 + count, jax.random.key(2))
    model, params = _flow(image_shape, num_scales, arch, x[:256], jax.random.key(3))
    return model, params, _latents(model, params, x[256:])


def _exact_lidl(model, deltas):
    def fn(p, z):
        decode = lid.flow_decoder(model, p)
        spectrum = lid.jacobian_spectrum(decode, z, vectors=True)
        return lid.lidl(spectrum, z, deltas)

    return fn


def _matrix_free(model, deltas, probes: int, iterations: int):
    def fn(p, z, key):
        decode = lid.flow_decoder(model, p)
        out = lid.lidl_matrix_free(
            decode, z, deltas, key, num_probes=probes, cg_iterations=iterations
        )
        return out.lid, out.residual

    return fn


def matrix_free_vs_exact(image_shape, num_scales, arch, count, grid) -> dict:
    """Exact vs matrix-free LIDL at δ = DELTA over a probes × iterations grid."""
    model, params, z = _setup(image_shape, num_scales, arch, count)
    deltas = jnp.array([DELTA])
    keys = [jax.random.key(100 + i) for i in range(count)]
    runs, compile_s = {}, {}
    exact, compile_s["exact"] = _compile(_exact_lidl(model, deltas), (params, z[0]))
    runs["exact"] = (exact, [(params, v) for v in z])
    for probes, iterations in grid:
        name = f"{probes}x{iterations}"
        fn = _matrix_free(model, deltas, probes, iterations)
        args = [(params, v, k) for v, k in zip(z, keys, strict=True)]
        compiled, compile_s[name] = _compile(fn, args[0])
        runs[name] = (compiled, args)
    times, outputs = _time(runs)
    exact_lid = np.array([float(o[0]) for o in outputs["exact"]])
    exact_s = times["exact"]
    rows = []
    for probes, iterations in grid:
        name = f"{probes}x{iterations}"
        estimate = np.array([float(o[0][0]) for o in outputs[name]])
        residual = np.array([float(o[1][0]) for o in outputs[name]])
        seconds = times[name]
        rows.append({
            "num_probes": probes,
            "cg_iterations": iterations,
            "seconds_per_image": seconds,
            "compile_seconds": compile_s[name],
            "speedup": exact_s / seconds,
            "mean_lid": float(estimate.mean()),
            "error_of_mean": float(abs(estimate.mean() - exact_lid.mean())
                                   / exact_lid.mean()),
            "mean_abs_error_per_image": float(np.mean(np.abs(estimate - exact_lid)
                                                      / exact_lid)),
            "max_cg_residual": float(residual.max()),
            "median_cg_residual": float(np.median(residual)),
        })  # fmt: skip
    return {
        "num_dims": int(z.shape[1]),
        "image_shape": list(image_shape),
        "num_scales": num_scales,
        "images": count,
        "delta": DELTA,
        "exact": {
            "seconds_per_image": exact_s,
            "compile_seconds": compile_s["exact"],
            "mean_lid": float(exact_lid.mean()),
            "lid": exact_lid.tolist(),
        },
        "matrix_free": rows,
        "goal": {"speedup": 20.0, "error_of_mean": 0.02},
    }


def cg_loop_overhead(arch, probes: int = 16, iterations: int = 10) -> dict:
    """The decoder's JJᵀv for a batch of probes, alone vs inside a ``fori_loop``.

    The CG of ``lidl_matrix_free`` runs in a ``lax.fori_loop``; on XLA:CPU
    convolutions inside while loops are slower than straight-line code
    (docs/performance.md). This measures that factor at D = 784.
    """
    model, params, z = _setup((28, 28, 1), 2, arch, 1)
    v0 = jax.random.normal(jax.random.key(5), (probes, z.shape[1]))

    def step(p, z, v, loop: bool):
        decode = lid.flow_decoder(model, p)
        flat = lambda u: jnp.ravel(decode(u))  # noqa: E731
        _, jvp = jax.linearize(flat, z)
        vjp = jax.linear_transpose(jvp, z)
        matvec = jax.vmap(lambda u: jvp(vjp(u)[0]))
        body = lambda _, u: u + 1e-3 * matvec(u)  # noqa: E731
        if loop:
            return jax.lax.fori_loop(0, iterations, body, v)
        for i in range(iterations):
            v = body(i, v)
        return v

    args = (params, z[0], v0)
    seconds, _ = _time({
        "straight": (_compile(lambda *a: step(*a, False), args)[0], [args] * 3),
        "loop": (_compile(lambda *a: step(*a, True), args)[0], [args] * 3),
    })  # fmt: skip
    return {
        "probes": probes,
        "iterations": iterations,
        "seconds_straight_line": seconds["straight"],
        "seconds_fori_loop": seconds["loop"],
        "slowdown": seconds["loop"] / seconds["straight"],
    }


def delta_sweep(arch, count: int, mf: tuple[int, int], mf_count: int) -> dict:
    """Time of 50 δ vs 1 δ (spectrum included), exact and matrix-free, at D = 784."""
    model, params, z = _setup((28, 28, 1), 2, arch, max(count, mf_count))
    one, many = jnp.array([DELTA]), jnp.linspace(*SWEEP)
    args = [(params, v) for v in z[:count]]
    exact_s, _ = _time({
        "exact_1": (_compile(_exact_lidl(model, one), args[0])[0], args),
        "exact_50": (_compile(_exact_lidl(model, many), args[0])[0], args),
    })  # fmt: skip
    key = jax.random.key(7)
    args = [(params, v, key) for v in z[:mf_count]]
    mf_s, _ = _time({
        "mf_1": (_compile(_matrix_free(model, one, *mf), args[0])[0], args),
        "mf_50": (_compile(_matrix_free(model, many, *mf), args[0])[0], args),
    })  # fmt: skip
    return {
        "num_dims": int(z.shape[1]),
        "num_deltas": SWEEP[2],
        "deltas": f"linspace({SWEEP[0]}, {SWEEP[1]}, {SWEEP[2]})",
        "exact": {
            "images": count,
            "seconds_one_delta": exact_s["exact_1"],
            "seconds_sweep": exact_s["exact_50"],
            "ratio": exact_s["exact_50"] / exact_s["exact_1"],
            "goal": 1.2,
        },
        "matrix_free": {
            "images": mf_count,
            "num_probes": mf[0],
            "cg_iterations": mf[1],
            "seconds_one_delta": mf_s["mf_1"],
            "seconds_sweep": mf_s["mf_50"],
            "ratio": mf_s["mf_50"] / mf_s["mf_1"],
        },
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
    compiled, compile_s = _compile(fn, args)
    seconds, out = _time({"jaxood": (compiled, [args] * 2)})
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lid_speed")
    parser.add_argument("--torch-python", default=".venv-bench/bin/python")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, prints, writes nothing"
    )
    parser.add_argument(
        "--only-lpca",
        action="store_true",
        help="re-measure part 4 only and update it in the existing results",
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.only_lpca:
        out = HERE / "results" / "lid_speed.json"
        result = json.loads(out.read_text())
        result["lpca"] = lpca_vs_skdim(
            args.torch_python, size["lpca_reference"], size["lpca_queries"],
            os.cpu_count() or 1,
        )  # fmt: skip
        result["load_average"]["lpca_rerun"] = os.getloadavg()[0]
        out.write_text(json.dumps(result, indent=2))
        readme.write()
        print(readme.lid_section(result))
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
            "delta": DELTA,
            "jacobian_chunk_size": 128,
            "threads": threads,
        },
    }
    log("exact_vs_layer6", "1/4 exact LID, jaxood vs torch.func.jacfwd + eigh")
    result["exact_vs_layer6"] = exact_vs_layer6(
        args.torch_python, size["arch"], size["layer6_images"], threads
    )
    result["matrix_free"] = {}
    for shape, scales in (((28, 28, 1), 2), ((32, 32, 3), 3)):
        d = int(np.prod(shape))
        log(f"matrix_free_{d}", f"2/4 matrix-free vs exact LIDL, D = {d}")
        result["matrix_free"][str(d)] = matrix_free_vs_exact(
            shape, scales, size["arch"], size["mf_images"][d], size["mf_grid"][d]
        )
    log("cg_loop_overhead", "2/4 CG loop overhead")
    result["cg_loop_overhead"] = cg_loop_overhead(size["arch"])
    log("delta_sweep", "3/4 δ sweep")
    result["delta_sweep"] = delta_sweep(
        size["arch"], size["sweep_images"], size["sweep_mf"], size["sweep_mf_images"]
    )
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
