"""Regenerates benchmarks/README.md from benchmarks/results/*.json (never by hand)."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _row(name: str, r: dict) -> str:
    return (
        f"| {name} | {r['params']:,} | {r['images_per_second']:.0f} "
        f"| {r['seconds_per_batch']:.4f} |"
    )


def _flow_section(r: dict) -> str:
    j, n, m = r["jaxood"], r["normflows"], r["matmul"]
    s = r["shape"]
    fraction = r["fraction_of_matmul_flops"]
    return f"""## Glow log-likelihood throughput (`benchmarks/flow_throughput.py`)

32×32×1, L={s["num_scales"]}, K={s["steps"]}, hidden {s["hidden"]}, batch {s["batch"]},
inference (no gradients), float32. Machine: {r["machine"]}; jax {r["jax"]},
torch {n["torch"]} ({n["threads"]} threads).

| implementation | params | images/s | s/batch |
|---|---|---|---|
{_row("jaxood (`jax.jit(log_prob)`)", j)}
{_row("normflows 1.7.3 (PyTorch)", n)}

**jaxood / normflows: {r["speedup_vs_normflows"]:.2f}×** (goal ≥ 1.5×).

jaxood achieves {j["flop_per_second"] / 1e9:.1f} GFLOP/s (XLA cost analysis:
{j["flops_per_batch"] / 1e9:.2f} GFLOP per batch), **{fraction:.1%}**
of a plain {m["n"]}×{m["n"]} float32 matmul measured in the same run
({m["flop_per_second"] / 1e9:.1f} GFLOP/s).
"""


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _mf_table(r: dict) -> str:
    e = r["exact"]
    lines = [
        f"D = {r['num_dims']} ({'×'.join(map(str, r['image_shape']))}, "
        f"L={r['num_scales']}), {r['images']} images: exact (SVD with vectors + "
        f"`lidl`) {e['seconds_per_image']:.3f} s/image, mean LID {e['mean_lid']:.1f}.",
        "",
        "| probes | CG iterations | s/image | speed-up vs exact | error of the mean "
        "| mean per-image error | max CG residual |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r["matrix_free"]:
        lines.append(
            f"| {m['num_probes']} | {m['cg_iterations']} | "
            f"{m['seconds_per_image']:.3f} | {m['speedup']:.2f}× | "
            f"{m['error_of_mean']:.1%} | {m['mean_abs_error_per_image']:.1%} | "
            f"{m['max_cg_residual']:.2g} |"
        )
    goal = r["goal"]
    met = [
        m
        for m in r["matrix_free"]
        if m["speedup"] >= goal["speedup"]
        and m["error_of_mean"] <= goal["error_of_mean"]
    ]
    best = max(r["matrix_free"], key=lambda m: m["speedup"])
    lines += [
        "",
        f"Goal ≥ {goal['speedup']:.0f}× with the mean within "
        f"{goal['error_of_mean']:.0%}: {_verdict(bool(met))} "
        f"(largest speed-up measured: {best['speedup']:.2f}×).",
    ]
    return "\n".join(lines)


def _load_warning(load: dict, cores: int) -> str:
    if max(load.values()) <= 0.5 * cores + 1.0:
        return ""
    return (
        "**Other jobs shared the CPU during this run: every time is inflated, the "
        "LAPACK steps (SVD, eigh, lPCA) most, because multi-threaded OpenBLAS/MKL "
        "degrades sharply when the cores are oversubscribed. Re-run `make bench` on "
        "an idle machine before quoting these numbers.** "
    )


def lid_section(r: dict) -> str:
    """The README section of ``benchmarks/lid_speed.py`` (also printed by it)."""
    e, v, st = r["exact_vs_layer6"], r["versions"], r["settings"]
    ours, theirs = e["jaxood"], e["layer6_torch"]
    sw, lp, cg = r["delta_sweep"], r["lpca"], r["cg_loop_overhead"]
    ex, mf = sw["exact"], sw["matrix_free"]
    mf_tables = "\n\n".join(_mf_table(m) for m in r["matrix_free"].values())
    jaxood_row = (
        f"| jaxood: `jax.linearize`, vmapped JVPs in chunks of "
        f"{st['jacobian_chunk_size']}, SVD of J | {ours['seconds_per_image']:.2f} "
        f"| compiled once in {ours['compile_seconds']:.0f} s |"
    )
    torch_row = (
        f"| layer6-style: `torch.func.jacfwd` of normflows' decoder, `eigh(JᵀJ)` "
        f"| {theirs['seconds_per_image']:.2f} | jacfwd "
        f"{theirs['seconds_jacobian']:.2f} s, eigh {theirs['seconds_eigh']:.2f} s |"
    )
    sweep_rows = (
        f"| exact (one SVD serves every δ) | {ex['seconds_one_delta']:.3f} "
        f"| {ex['seconds_sweep']:.3f} | **{ex['ratio']:.2f}×** |\n"
        f"| matrix-free, {mf['num_probes']} probes × {mf['cg_iterations']} "
        f"iterations | {mf['seconds_one_delta']:.3f} | {mf['seconds_sweep']:.2f} "
        f"| {mf['ratio']:.1f}× |"
    )
    lpca_rows = (
        f"| jaxood (jit; compiled once in {lp['jaxood']['compile_seconds']:.1f} s) "
        f"| {lp['jaxood']['seconds']:.2f} | {lp['jaxood']['mean']:.2f} |\n"
        f"| scikit-dimension | {lp['skdim']['seconds']:.2f} "
        f"| {lp['skdim']['mean']:.2f} |"
    )
    load = r["load_average"]
    return f"""## Flow LID speed (`benchmarks/lid_speed.py`)

Machine: {r["machine"]}, {st["threads"]} threads on both sides; 1-minute load
average between {min(load.values()):.1f} and {max(load.values()):.1f} during the run.
{_load_warning(load, st["threads"])}jax {v["jax"]}, torch {v["torch"]}, normflows
{v["normflows"]}, scikit-dimension {v["skdim"]} (scikit-learn {v["sklearn"]}, numba
{v["numba"]}), numpy {v["numpy"]}. Random-init {st["flow"]}; the coupling output convs
are redrawn from N(0, {st["perturb_std"]}²) before the data-dependent init, so the
flows are not linear. A trained flow's wider spectrum makes CG slower: the
matrix-free numbers are on the optimistic side. Medians over images, compilation
excluded. Total run time {r["total_seconds"] / 60:.1f} min.

### Exact flow LID per image, D = {e["num_dims"]}

| path | s/image | notes |
|---|---|---|
{jaxood_row}
{torch_row}

**torch / jaxood: {e["speedup"]:.2f}×** (goal ≥ {e["goal"]:.0f}×:
{_verdict(e["speedup"] >= e["goal"])}); {e["images_timed"]} images each.

### Matrix-free (Hutchinson + CG) vs exact LIDL at δ = {st["delta"]}

{mf_tables}

Every CG iteration costs one JVP and one VJP per probe, so probes × iterations must
stay well below D / 3 to beat D JVPs plus one SVD. The CG runs in a `lax.fori_loop`,
and on XLA:CPU the decoder's JJᵀv for {cg["probes"]} probes costs
**{cg["slowdown"]:.1f}×** more inside the loop than in straight-line code
({cg["seconds_fori_loop"]:.2f} s vs {cg["seconds_straight_line"]:.2f} s for
{cg["iterations"]} iterations; see docs/performance.md).

### δ sweep: {sw["num_deltas"]} scales ({sw["deltas"]}) vs one, D = {sw["num_dims"]}

| path | 1 δ, s/image | {sw["num_deltas"]} δ, s/image | ratio |
|---|---|---|---|
{sweep_rows}

Exact sweep goal ≤ {ex["goal"]}×: {_verdict(ex["ratio"] <= ex["goal"])}. The
matrix-free cost grows with the number of δ (one set of CG solves per δ).

### lPCA: `jaxood.lid.lpca` vs scikit-dimension `lPCA(ver="FO")`

{lp["queries"]} query points among {lp["reference_points"]:,} Fashion-MNIST training
images (D = {lp["num_dims"]}, model space), {lp["n_neighbors"]} neighbours (a point is
its own neighbour on both sides), alphaFO = {lp["alpha"]}. scikit-dimension:
scikit-learn's `NearestNeighbors` + `fit_pw(precomputed_knn=...)`, both timed.

| implementation | seconds | mean lPCA |
|---|---|---|
{lpca_rows}

**scikit-dimension / jaxood: {lp["speedup"]:.2f}×**; identical estimates at
{lp["fraction_identical"]:.1%} of the points (largest difference
{lp["max_abs_difference"]}, mean {lp["mean_abs_difference"]:.2f}).
"""


def write() -> None:
    sections = []
    flow = HERE / "results" / "flow_throughput.json"
    if flow.exists():
        sections.append(_flow_section(json.loads(flow.read_text())))
    lid = HERE / "results" / "lid_speed.json"
    if lid.exists():
        sections.append(lid_section(json.loads(lid.read_text())))
    body = "\n".join(sections) or "No benchmark has been run yet: `make bench`.\n"
    (HERE / "README.md").write_text(
        "# Benchmarks\n\nGenerated by the benchmark scripts from "
        "`benchmarks/results/*.json` (`make bench`); do not edit by hand.\n\n" + body
    )
