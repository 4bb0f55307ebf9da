"""Glow log-likelihood throughput: jaxood vs normflows (PyTorch), same run, same CPU.

    python -m benchmarks.flow_throughput --torch-python .venv-bench/bin/python

Both models: 32x32x1 input, L=3 scales, K=8 steps, hidden 64, affine (sigmoid-scale)
channel coupling with ActNorm inside the coupling nets, LU 1x1 convs, batch 64,
log p(x) without gradients, float32, 2 threads. Also measures jaxood's achieved
FLOP/s (XLA's cost analysis of the compiled log_prob) against a plain float32 matmul
measured in the same process. Writes ``benchmarks/results/flow_throughput.json`` and
regenerates ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import readme
from jaxood import flows

HERE = Path(__file__).resolve().parent
SHAPE = dict(num_scales=3, steps=8, hidden=64, batch=64)


def _best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def jaxood_glow(repeats: int) -> dict:
    config = flows.GlowConfig(
        image_shape=(32, 32, 1),
        num_scales=SHAPE["num_scales"],
        steps_per_scale=SHAPE["steps"],
        hidden=SHAPE["hidden"],
    )
    model = flows.Glow(config)
    x = jax.random.uniform(jax.random.key(0), (SHAPE["batch"], 32, 32, 1)) - 0.5
    params = flows.init(model, jax.random.key(1), x)
    fn = jax.jit(lambda p, v: flows.log_prob(model, p, v).total)
    seconds = _best_time(lambda: fn(params, x), repeats)
    cost = fn.lower(params, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan")))
    num_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    return {
        "images_per_second": SHAPE["batch"] / seconds,
        "seconds_per_batch": seconds,
        "flops_per_batch": flops,
        "flop_per_second": flops / seconds,
        "params": num_params,
    }


def matmul_peak(repeats: int, n: int = 2048) -> dict:
    a = jax.random.normal(jax.random.key(0), (n, n))
    b = jax.random.normal(jax.random.key(1), (n, n))
    fn = jax.jit(jnp.matmul)
    seconds = _best_time(lambda: fn(a, b), repeats)
    return {"n": n, "flop_per_second": 2.0 * n**3 / seconds}


def normflows_glow(python: str, repeats: int) -> dict:
    command = [
        python, str(HERE / "normflows_glow.py"),
        "--num-scales", str(SHAPE["num_scales"]), "--steps", str(SHAPE["steps"]),
        "--hidden", str(SHAPE["hidden"]), "--batch", str(SHAPE["batch"]),
        "--repeats", str(repeats), "--threads", str(os.cpu_count() or 1),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flow_throughput")
    parser.add_argument("--torch-python", default=".venv-bench/bin/python")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    ours = jaxood_glow(args.repeats)
    peak = matmul_peak(args.repeats)
    theirs = normflows_glow(args.torch_python, args.repeats)
    result = {
        "shape": SHAPE,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0]}",
        "jax": jax.__version__,
        "jaxood": ours,
        "normflows": theirs,
        "matmul": peak,
        "speedup_vs_normflows": ours["images_per_second"] / theirs["images_per_second"],
        "fraction_of_matmul_flops": ours["flop_per_second"] / peak["flop_per_second"],
    }
    out = HERE / "results" / "flow_throughput.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"jaxood {ours['images_per_second']:.0f} img/s, normflows "
        f"{theirs['images_per_second']:.0f} img/s: "
        f"{result['speedup_vs_normflows']:.2f}x; "
        f"jaxood {ours['flop_per_second'] / 1e9:.1f} GFLOP/s = "
        f"{result['fraction_of_matmul_flops']:.1%} of a {peak['n']}^2 matmul "
        f"({peak['flop_per_second'] / 1e9:.1f} GFLOP/s)"
    )
    readme.write()


if __name__ == "__main__":
    main()
