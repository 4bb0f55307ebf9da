"""What data parallelism costs and gives: the single-device path against the
sharded path (``jaxood.parallel``) on the shipped Fashion-MNIST Glow, and the
bits/dim that bfloat16 coupling networks move.

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.parallel_speed

Three paths, timed interleaved (medians, compilation apart): log p of a batch of
256 test images (images/s), one training step on 64 (steps/s) and the exact flow
LID of 2 images (s/image). "single": plain ``jit`` on the default device; "mesh":
the same functions on a ``parallel.data_mesh`` (batch split, params replicated).
Run in this process (1 device: the sharding overhead, goal ≤ 5 %) and in a child
process with ``--xla_force_host_platform_device_count=2`` (a 2-device CPU mesh
over the same cores: what splitting costs or gains there; no new compute). On a
machine with accelerators the child is skipped and the mesh spans them. Then
float32 against ``compute_dtype="bfloat16"`` on the same params: bits/dim of
``--bf16-images`` test images. ``--quick``: tiny sizes, nothing written. Writes
``benchmarks/results/parallel_speed.json`` and regenerates ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import readme
from benchmarks.lid_speed import compile_ahead, time_interleaved, trained_glow
from jaxood import data, flows, lid, parallel, train

FULL = dict(log_prob_batch=256, train_batch=64, lid_images=2, repeats=7, bf16=1000)
QUICK = dict(log_prob_batch=8, train_batch=8, lid_images=2, repeats=2, bf16=16)


def _paths(size: dict) -> dict:
    """``{path: {single, mesh}}`` medians on this process's devices."""
    model, params, x = trained_glow(size["log_prob_batch"])
    mesh = parallel.data_mesh()
    on_mesh = parallel.replicate(mesh, params)
    log_p = jax.jit(lambda p, v: model.forward(p, v).total)
    runs = {
        "single": (log_p, [(params, x)] * size["repeats"]),
        "mesh": (log_p, [(on_mesh, parallel.shard_batch(mesh, x))] * size["repeats"]),
    }
    compiled = {k: compile_ahead(fn, args[0])[0] for k, (fn, args) in runs.items()}
    median, _ = time_interleaved(
        {k: (compiled[k], args) for k, (_, args) in runs.items()}
    )
    out = {"log_prob_images_per_second": {
        k: size["log_prob_batch"] / v for k, v in median.items()}}  # fmt: skip

    optimizer = train.make_optimizer(1e-4)
    loss = flows.losses.nll_loss(model)
    images = data.resize(data.load("fashion_mnist", "train")[: size["train_batch"]], 32)
    steps, states = {}, {}
    for name, kwargs in (("single", {}), ("mesh", {"mesh": mesh})):
        steps[name] = train.make_train_step(loss, optimizer, **kwargs)
        states[name] = train.init_state(params, optimizer)
        states[name], _ = steps[name](states[name], images, jax.random.key(0))
    times = {name: [] for name in steps}
    for _ in range(size["repeats"]):
        for name, step in steps.items():
            tic = time.perf_counter()
            # Wait for the whole new state: the loss is ready before the update.
            states[name] = jax.block_until_ready(
                step(states[name], images, jax.random.key(0))
            )[0]
            times[name].append(time.perf_counter() - tic)
    out["train_steps_per_second"] = {k: 1 / np.median(v) for k, v in times.items()}

    n = size["lid_images"]
    spectra = jax.jit(lambda p, v: lid.flow_spectra(model, p, v, chunk_size=128)[0])
    lid_runs = {
        "single": (spectra, [(params, x[:n])] * 2),
        "mesh": (spectra, [(on_mesh, parallel.shard_batch(mesh, x[:n]))] * 2),
    }
    compiled = {k: compile_ahead(fn, args[0])[0] for k, (fn, args) in lid_runs.items()}
    median, _ = time_interleaved(
        {k: (compiled[k], args) for k, (_, args) in lid_runs.items()}
    )
    out["exact_lid_seconds_per_image"] = {k: v / n for k, v in median.items()}
    out["devices"] = parallel.describe(mesh)
    return out


def _bfloat16(size: dict) -> dict:
    """Bits/dim of float32 and bfloat16 coupling nets on the same params."""
    model, params, x = trained_glow(size["bf16"])
    narrow = flows.Glow(dataclasses.replace(model.config, compute_dtype="bfloat16"))
    dims = model.config.num_dims

    def bpd(m):
        fn = jax.jit(lambda v: m.forward(params, v).total)
        total = np.concatenate([np.asarray(fn(x[i : i + 100])) for i in
                                range(0, len(x), 100)])  # fmt: skip
        return np.asarray(data.bits_per_dim(-jnp.asarray(total), dims))

    wide, short = bpd(model), bpd(narrow)
    difference = short - wide
    return {
        "images": len(x),
        "bits_per_dim_float32": float(wide.mean()),
        "bits_per_dim_bfloat16": float(short.mean()),
        "mean_difference": float(difference.mean()),
        "mean_abs_difference": float(np.abs(difference).mean()),
        "max_abs_difference": float(np.abs(difference).max()),
    }


def _child(quick: bool) -> dict | None:
    """The paths on a forced 2-device CPU mesh (a child: the device count is fixed
    when the backend starts); None when this machine has accelerators."""
    if jax.default_backend() != "cpu":
        return None
    flags = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    )
    command = [sys.executable, "-m", "benchmarks.parallel_speed", "--child"]
    done = subprocess.run(
        command + (["--quick"] if quick else []),
        env={**os.environ, "XLA_FLAGS": flags},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("CHILD"))
    return json.loads(line.removeprefix("CHILD"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel_speed")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.child:
        print("CHILD" + json.dumps(_paths(size)))
        return
    tic, load = time.perf_counter(), [os.getloadavg()[0]]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "device_kind": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "model": "shipped Fashion-MNIST Glow (L=3, K=8, hidden 64, 32x32x1)",
        "sizes": size,
        "one_device": _paths(size),
    }
    load.append(os.getloadavg()[0])
    result["two_cpu_devices"] = _child(args.quick)
    load.append(os.getloadavg()[0])
    result["bfloat16"] = _bfloat16(size)
    result["goal_overhead"] = 0.05
    result["load_average"] = [*load, os.getloadavg()[0]]
    result["total_seconds"] = time.perf_counter() - tic
    readme.publish(
        "parallel_speed", {**result, "quick": args.quick}, readme.parallel_section
    )


if __name__ == "__main__":
    main()
