"""Exact flow LID spectra on an accelerator host that has JAX and Flax but neither
tensorflow-datasets nor the prepared data.

The spectra of a LID run's evaluation images are computed there and read back into
the run directory's cache, where the published command (``python -m experiments.main
... --mode lid``) finds them and computes only the rest (calibration, LIDL, tables)::

    # here: the ID model and the images still missing from the cache
    python -m benchmarks.lid_offload export BUNDLE -- --config ... --workdir ...
    # on the accelerator: spectra and log p, as many as fit in the time budget
    python -m benchmarks.lid_offload compute BUNDLE ROWS --budget_s 400
    # here: the rows into the cache, each checked against its image
    python -m benchmarks.lid_offload merge ROWS -- --config ... --workdir ...

``compute`` calls the pipeline's own ``jaxood.lid.flow_spectra_images`` with matmul
and convolution precision "highest": an accelerator's default (TF32 or bf16 passes)
would blur the small singular values that the thresholds count. It first recomputes
a few rows that the CPU computed and reports the largest differences, and it writes
its throughput to ``ROWS/throughput.json`` (``merge`` keeps it, with the device, in
``benchmarks/results/lid_offload.json`` under the run directory's name).
"""

from __future__ import annotations

import argparse
import functools
import json
import pickle
import time
from pathlib import Path

import jax
import numpy as np

from jaxood import io, lid

HERE = Path(__file__).resolve().parent
REFERENCE_ROWS = 8  # cached CPU rows of id_test recomputed on the accelerator


def _run(argv: list[str]):
    """The LID run of an ``experiments.main`` command line: config, model, sets."""
    from experiments import flow_pipeline, lid_pipeline, main

    config, workdir, mode = main.parse(["experiments.main", *argv])
    if mode != "lid" or config.pipeline != "flow":
        raise SystemExit("lid_offload takes the command line of a flow --mode lid run")
    sets = flow_pipeline.load_sets(config)
    return config, workdir, sets, lid_pipeline


def _cached(file: Path, key: dict, images: np.ndarray) -> dict[str, np.ndarray]:
    """The run's cached rows of ``images`` (none if they are of other images)."""
    return io.saved_rows(file, key, io.row_hashes(images)) or {}


def export(bundle: Path, argv: list[str]) -> None:
    """Writes the ID model and every evaluation image without cached spectra."""
    config, workdir, sets, pipeline = _run(argv)
    from experiments import flow_pipeline

    params = flow_pipeline.train_all(config, workdir, sets, id_only=True)["id"]
    key = pipeline.rows_key(io.stage_summary(workdir / "id"))
    chosen = pipeline.chosen_sets(sets, config.lid)
    missing, starts, reference = {}, {}, {}
    for name, images in chosen.items():
        if name in ("calibration", "validation"):  # a few hundred: the CPU's
            continue
        file = pipeline.rows_file(workdir / "lid", name)
        done = len(_cached(file, key, images).get("s", []))
        if done < len(images):
            missing[name], starts[name] = images[done:], done
    cpu = _cached(
        pipeline.rows_file(workdir / "lid", "id_test"), key, chosen["id_test"]
    )
    if len(cpu.get("s", [])) >= REFERENCE_ROWS:
        reference = {"images": chosen["id_test"][:REFERENCE_ROWS]}
        reference |= {k: cpu[k][:REFERENCE_ROWS] for k in ("s", "log_p")}
    bundle.mkdir(parents=True, exist_ok=True)
    with open(bundle / "model.pkl", "wb") as f:
        pickle.dump({"model": flow_pipeline.build_model(config),
                     "params": jax.tree.map(np.asarray, params),
                     "starts": starts, "reference": reference}, f)  # fmt: skip
    np.savez_compressed(bundle / "images.npz", **missing)
    print({name: len(images) for name, images in missing.items()}, "->", bundle)


def _rows(model, params, images, batch_size, chunk_size) -> dict[str, np.ndarray]:
    return lid.flow_spectra_images(
        model, params, images, batch_size=batch_size, chunk_size=chunk_size, desc=""
    )


def _reference_check(model, params, reference, batch_size, chunk_size) -> dict:
    """Largest differences to the CPU's rows: log s where s > e⁻¹⁰ (the thresholds'
    range), log p, and the threshold LID at log τ ∈ {−6, −3, 0}."""
    got = _rows(model, params, reference["images"], batch_size, chunk_size)
    s, cpu = got["s"], reference["s"]
    shown = cpu > np.exp(-10.0)
    counts = [
        np.abs(lid.threshold_lid(s, t) - lid.threshold_lid(cpu, t)).max()
        for t in (-6.0, -3.0, 0.0)
    ]
    return {
        "images": len(s),
        "max_abs_log_s": float(np.abs(np.log(s[shown]) - np.log(cpu[shown])).max()),
        "max_abs_log_p": float(np.abs(got["log_p"] - reference["log_p"]).max()),
        "max_threshold_lid_change": int(max(counts)),
    }


def compute(bundle: Path, rows: Path, budget_s: float, batch_size: int,
            chunk_size: int, chunk_rows: int) -> None:  # fmt: skip
    """Spectra of the bundle's images, round-robin over the sets in chunks of
    ``chunk_rows`` (so that all grow together), until done or ``budget_s`` ends."""
    began = time.monotonic()
    jax.config.update("jax_default_matmul_precision", "highest")
    with open(bundle / "model.pkl", "rb") as f:
        saved = pickle.load(f)
    model, params = saved["model"], jax.tree.map(jax.numpy.asarray, saved["params"])
    images = dict(np.load(bundle / "images.npz"))
    rows.mkdir(parents=True, exist_ok=True)
    report = {"device": str(jax.devices()[0].device_kind), "jax": jax.__version__,
              "batch_size": batch_size, "chunk_size": chunk_size,
              "latent_dims": int(model.config.num_dims)}  # fmt: skip
    print(report, flush=True)
    if saved["reference"]:
        t = time.monotonic()
        report["reference"] = _reference_check(
            model, params, saved["reference"], batch_size, chunk_size
        )
        report["first_call_s"] = time.monotonic() - t  # compiles included
        print(report["reference"], flush=True)
    done = {name: {"s": [], "log_p": []} for name in images}
    ends, seconds, counted = dict.fromkeys(images, 0), 0.0, 0
    while time.monotonic() - began < budget_s:
        todo = [n for n in images if ends[n] < len(images[n])]
        if not todo:
            break
        for name in todo:
            start = ends[name]
            chunk = images[name][start : start + chunk_rows]
            t = time.monotonic()
            got = _rows(model, params, chunk, batch_size, chunk_size)
            seconds, counted = seconds + time.monotonic() - t, counted + len(chunk)
            for k in ("s", "log_p"):
                done[name][k].append(got[k])
            end = ends[name] = start + len(chunk)
            np.savez(rows / f"{name.replace('/', '_')}.npz",
                     s=np.concatenate(done[name]["s"]),
                     log_p=np.concatenate(done[name]["log_p"]),
                     checksum=io.row_hashes(images[name][:end]),
                     start=saved["starts"][name], set=name)  # fmt: skip
            rate, elapsed = counted / seconds, time.monotonic() - began
            print(f"{name}: {end}/{len(images[name])}, {rate:.1f} images/s, "
                  f"{elapsed:.0f} s", flush=True)  # fmt: skip
            if time.monotonic() - began >= budget_s:
                break
    report |= {"images": counted, "seconds": seconds,
               "images_per_second": counted / max(seconds, 1e-9)}  # fmt: skip
    io.write_json(rows / "throughput.json", report)
    print(report, flush=True)


def rows_of(got: dict[str, np.ndarray], images: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of ``images`` among the computed rows ``got`` (found by the hash of
    each image: the cache asks for an image that repeats an earlier one only once)."""
    where = {h: i for i, h in enumerate(got["checksum"].tolist())}
    index = [where[h] for h in io.row_hashes(images).tolist()]
    return {"s": got["s"][index], "log_p": got["log_p"][index]}


def merge(rows: Path, argv: list[str]) -> None:
    """Appends each rows file to the run's cache, refusing rows of other images."""
    config, workdir, sets, pipeline = _run(argv)
    key = pipeline.rows_key(io.stage_summary(workdir / "id"))
    chosen = pipeline.chosen_sets(sets, config.lid)
    for path in sorted(rows.glob("*.npz")):
        got = dict(np.load(path))
        name, start, n = str(got["set"]), int(got["start"]), len(got["s"])
        images = chosen[name][: start + n]
        if not np.array_equal(io.row_hashes(images[start:]), got["checksum"]):
            raise SystemExit(f"{path}: rows of other images than {name}[{start}:]")
        file = pipeline.rows_file(workdir / "lid", name)
        if len(_cached(file, key, images).get("s", [])) != start:
            raise SystemExit(f"{file}: the cache no longer ends at row {start}")

        fn = functools.partial(rows_of, got)
        io.resumable_rows(file, key, fn, images, n, name, save_every=0)
        print(f"{name}: rows {start}–{start + n} merged into {file}")
    results = HERE / "results" / "lid_offload.json"  # one entry per call
    runs = json.loads(results.read_text()) if results.exists() else {}
    runs[call_name(runs, workdir.name)] = json.loads(
        (rows / "throughput.json").read_text()
    )
    io.write_json(results, runs)


def call_name(runs: dict, run: str) -> str:
    """The entry of a new call for the run directory ``run``: its name for the
    first call, then ``"<run>, call 2"`` and so on (a merge that succeeded is a new
    call: the cache check refuses rows merged before)."""
    earlier = [name for name in runs if name.split(", call ")[0] == run]
    return f"{run}, call {len(earlier) + 1}" if earlier else run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("export").add_argument("bundle", type=Path)
    c = sub.add_parser("compute")
    c.add_argument("bundle", type=Path)
    c.add_argument("rows", type=Path)
    c.add_argument("--budget_s", type=float, default=400.0)
    c.add_argument("--batch_size", type=int, default=16)
    c.add_argument("--chunk_size", type=int, default=1024, help="JVPs at once")
    c.add_argument("--chunk_rows", type=int, default=500)
    sub.add_parser("merge").add_argument("rows", type=Path)
    args, rest = parser.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    if args.command == "export":
        export(args.bundle, rest)
    elif args.command == "compute":
        compute(args.bundle, args.rows, args.budget_s, args.batch_size,
                args.chunk_size, args.chunk_rows)  # fmt: skip
    else:
        merge(args.rows, rest)


if __name__ == "__main__":
    main()
