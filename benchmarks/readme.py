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


def slq_work(num_probes: int, num_steps: int) -> int:
    """JVPs plus VJPs per image of two-sided ``lid.flow_slq``: 2 sides × (P + 1)
    runs × m steps × 2."""
    return 2 * (num_probes + 1) * num_steps * 2


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def _slq_table(r: dict) -> str:
    e, goal = r["exact"], r["goal"]
    lines = [
        f"**D = {r['num_dims']}**, {r['flow']}; {r['images']} images in batches of "
        f"{r['batch']}. Exact: {e['seconds_per_image']:.2f} s/image (compiled in "
        f"{e['compile_seconds']:.0f} s).",
        "",
        "| probes × steps | s/image | speed-up | sweep | typical | error of the mean "
        "there | worst on the grid | per-image error | indicator covers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in r["slq"]:
        for sweep, symbol in (("threshold", "ℓ"), ("lidl", "δ")):
            a = m[sweep]
            lines.append(
                f"| {m['num_probes']} × {m['num_steps']} | "
                f"{m['seconds_per_image']:.2f} | {m['speedup']:.2f}× | {sweep} | "
                f"{symbol} = {a['typical']:.2f} (mean {a['exact_mean_at_typical']:.0f})"
                f" | {a['error_of_mean_at_typical']:.1%} | "
                f"{a['max_error_of_mean_on_grid']:.1%} at {symbol} = "
                f"{a['worst_grid_point']:.2f} | "
                f"{a['per_image_error_at_typical']:.1%} | {a['coverage']:.0%} |"
            )
    met = [
        m
        for m in r["slq"]
        if m["speedup"] >= goal["speedup"]
        and all(
            m[k]["error_of_mean_at_typical"] <= goal["error_of_mean"]
            and m[k]["max_error_of_mean_on_grid"] <= goal["error_of_mean"]
            for k in ("threshold", "lidl")
        )
    ]
    best = max(r["slq"], key=lambda m: m["speedup"])
    d = r["num_dims"]
    passes = {
        f"{m['num_probes']} × {m['num_steps']}": slq_work(
            m["num_probes"], m["num_steps"]
        )
        for m in r["slq"]
    }
    lines += [
        "",
        f"Goal ≥ {goal['speedup']:.0f}× with the mean within "
        f"{goal['error_of_mean']:.0%} at the typical point and across the grid: "
        f"{_verdict(bool(met))} (largest speed-up measured: {best['speedup']:.2f}×).",
        f"Work per image: exact {d} JVPs (in batches) and one SVD; two-sided SLQ 2 "
        "sides × (P + 1) runs × m steps × (JVP + VJP) = "
        + ", ".join(f"{n:,} passes ({k})" for k, n in passes.items())
        + f", i.e. {min(passes.values()) / d:.2f}× to "
        f"{max(passes.values()) / d:.2f}× the exact path's D passes.",
    ]
    return "\n".join(lines)


def _auroc_section(a: dict | None) -> str:
    """Exact vs SLQ LID in the OOD detectors (``--only auroc``), if measured."""
    if a is None:
        return ""
    rows = "\n".join(
        f"| {k} | {a['auroc']['exact'][k]:.3f} | {a['auroc']['slq'][k]:.3f} |"
        for k in a["auroc"]["exact"]
    )
    t, m = a["seconds_per_image"], a["mean_lid"]
    return f"""
### SLQ LID in the detectors: FMNIST test vs MNIST-5k

The shipped Glow, {a["images_per_set"]} images per set, LID at the calibrated
log τ = {a["log_tau"]:.2f} of the Fashion-MNIST LID experiment; SLQ with
{a["slq"]["num_probes"]} probes × {a["slq"]["num_steps"]} steps per side; rank-AND
CDFs from {a["validation_images"]} further FMNIST test images. Mean LID of FMNIST
test: exact {m["exact"]["id_test"]:.1f}, SLQ {m["slq"]["id_test"]:.1f}; of MNIST-5k:
exact {m["exact"]["ood"]:.1f}, SLQ {m["slq"]["ood"]:.1f}. Seconds per image: exact
{t["exact"]:.2f}, SLQ {t["slq"]:.2f}.

| AUROC | exact LID | SLQ LID |
|---|---|---|
{rows}

**Largest difference {a["largest_difference"]:.3f}** (goal ≤ {a["goal"]}:
{_verdict(a["largest_difference"] <= a["goal"])}).
"""


def _load_warning(load: dict, cores: int) -> str:
    busy = [part for part, value in load.items() if value > 0.5 * cores + 1.0]
    if not busy:
        return ""
    return (
        f"**Other jobs shared the CPU when these were measured: {', '.join(busy)}. "
        "Their times are inflated, the LAPACK steps (SVD, eigh, lPCA) most, because "
        "multi-threaded OpenBLAS/MKL degrades sharply when the cores are "
        "oversubscribed; re-run them on an idle machine before quoting them.** "
    )


def lid_section(r: dict) -> str:
    """The README section of ``benchmarks/lid_speed.py`` (also printed by it)."""
    e, v, st = r["exact_vs_layer6"], r["versions"], r["settings"]
    ours, theirs = e["jaxood"], e["layer6_torch"]
    lp = r["lpca"]
    slq_tables = "\n\n".join(_slq_table(m) for m in r["slq"].values())
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
flows are not linear. Medians over images (or batches), compilation excluded.
Total run time {r["total_seconds"] / 60:.1f} min.

### Exact flow LID per image, D = {e["num_dims"]}

| path | s/image | notes |
|---|---|---|
{jaxood_row}
{torch_row}

**torch / jaxood: {e["speedup"]:.2f}×** (goal ≥ {e["goal"]:.0f}×:
{_verdict(e["speedup"] >= e["goal"])}); {e["images_timed"]} images each.

### Stochastic Lanczos quadrature vs exact: 50 τ and 50 δ per image

Both paths sweep ℓ = log τ over linspace(-10, 5, 50) and δ over linspace(-8, 2, 50).
SLQ is two-sided (`lid.flow_slq`: Lanczos on JᵀJ and on (JᵀJ)⁻¹ through the
encoder), P probes × m steps per side. "typical": the grid point where the exact mean
LID is D/6 (as at the calibrated τ of the Fashion-MNIST LID experiment); "worst on the
grid": the largest error of the mean over grid points whose exact mean LID is at least
1 % of D; per-image error: mean |SLQ − exact| / exact at the typical point; "indicator
covers": share of (image, grid point) pairs where |SLQ − exact| ≤ the reported error.

{slq_tables}
{_auroc_section(r.get("auroc"))}
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


def flipd_section(r: dict) -> str:
    """The README section of ``benchmarks/flipd_speed.py`` (also printed by it)."""
    t, goal = r["timings"], r["goal"]
    names = {
        "flipd_exact": "FLIPD, exact trace (784 JVPs)",
        "flipd_hutchinson_8": "FLIPD, 8 Rademacher probes",
        "normal_bundle": "normal bundle (3,136 scores + SVD)",
        "glow_exact_lid": "exact flow LID of the shipped Glow (D = 1024)",
        "sweep_50_t0_64_images_one_call": "50 t0 × 64 images, 1 probe, one call",
    }
    rows = "\n".join(
        f"| {label} | {t[k]['seconds']:.3f} | {t[k]['compile_seconds']:.0f} |"
        for k, label in names.items()
    )
    speed, rho = r["speedup_hutchinson_vs_bundle"], r["spearman_hutchinson_vs_exact"]
    bundle = r["spearman_bundle_vs_exact"]
    rho_text = "n/a (under 3 images)" if rho is None else f"{rho:.3f}"
    rho_met = rho is not None and rho >= goal["spearman"]
    return f"""## FLIPD speed (`benchmarks/flipd_speed.py`)

Machine: {r["machine"]}; jax {r["jax"]}; {r["model"]}, D = 784, t0 = {r["t0"]};
1-minute load average {min(r["load_average"]):.1f} to {max(r["load_average"]):.1f}.
Seconds per image (the sweep row: per call), medians, compilation apart.
Total run time {r["total_seconds"] / 60:.1f} min.

| path | seconds | compile (s) |
|---|---|---|
{rows}

**Normal bundle / 8-probe FLIPD: {speed:.0f}×** (goal ≥ {goal["speedup"]:.0f}×:
{_verdict(speed >= goal["speedup"])}). **Spearman ρ of 8-probe to exact-trace FLIPD
over {r["images"]} images: {rho_text}** (goal ≥ {goal["spearman"]}:
{_verdict(rho_met)}); mean FLIPD {r["mean_flipd_exact"]:.1f} (exact)
and {r["mean_flipd_hutchinson_8"]:.1f} (8 probes), mean |difference|
{r["mean_abs_difference"]:.1f}. Normal-bundle LID of the first images:
{r["normal_bundle_lid"]}{
        f" (Spearman ρ to exact FLIPD {bundle:.2f})" if bundle is not None else ""
    }.
"""


def _parallel_rows(r: dict, label: str) -> list[str]:
    rows = []
    for key, name, unit, higher in (
        ("log_prob_images_per_second", "log p, batch of 256", "images/s", True),
        ("train_steps_per_second", "train step, batch of 64", "steps/s", True),
        ("exact_lid_seconds_per_image", "exact flow LID", "s/image", False),
    ):
        single, mesh = r[key]["single"], r[key]["mesh"]
        cost = (single / mesh - 1) if higher else (mesh / single - 1)
        rows.append(
            f"| {label} | {name} | {single:.3g} | {mesh:.3g} | {unit} | {cost:+.1%} |"
        )
    return rows


def parallel_section(r: dict) -> str:
    """The README section of ``benchmarks/parallel_speed.py`` (also printed by it)."""
    one, two, bf = r["one_device"], r["two_cpu_devices"], r["bfloat16"]
    rows = _parallel_rows(one, one["devices"].rsplit(": ", 1)[0])
    if two is not None:
        rows += _parallel_rows(two, two["devices"].rsplit(": ", 1)[0])
    worst = max(
        (one[k]["single"] / one[k]["mesh"] - 1)
        if k != "exact_lid_seconds_per_image"
        else (one[k]["mesh"] / one[k]["single"] - 1)
        for k in one
        if k != "devices"
    )
    table = "\n".join(rows)
    return f"""## Data parallelism (`benchmarks/parallel_speed.py`)

Machine: {r["machine"]}, backend {r["backend"]} ({r["device_kind"]}); jax {r["jax"]};
{r["model"]}. "single": plain `jit` on one device; "mesh": the same function on
`parallel.data_mesh()` (batch split, params replicated). Medians, compilation apart;
1-minute load average {min(r["load_average"]):.1f} to {max(r["load_average"]):.1f};
total {r["total_seconds"] / 60:.1f} min. Cost = how much slower the mesh path is.

| mesh | path | single | mesh | unit | cost |
|---|---|---|---|---|---|
{table}

**Sharding overhead on one device: at most {worst:+.1%}** (goal ≤
{r["goal_overhead"]:.0%}: {_verdict(worst <= r["goal_overhead"])}). The forced
2-device CPU mesh runs on the same cores (no compute is added): a negative cost there
means that one XLA CPU device left cores idle. No accelerator was lent for a GPU row.

bfloat16 coupling networks (`GlowConfig(compute_dtype="bfloat16")`), same params,
{bf["images"]} test images: {bf["bits_per_dim_float32"]:.4f} bits/dim in float32,
{bf["bits_per_dim_bfloat16"]:.4f} in bfloat16; per image the difference is
{bf["mean_difference"]:+.4f} on average, {bf["mean_abs_difference"]:.4f} in absolute
value, at most {bf["max_abs_difference"]:.4f}.
"""


def offload_section(runs: dict, cpu_seconds: float | None) -> str:
    """``benchmarks/lid_offload.py``: one row per call that computed spectra of a run
    directory on an accelerator and merged them into its cache."""
    rows = "\n".join(
        f"| `{name}` | {r['device']} | {r['jax']} | {r['latent_dims']} "
        f"| {r['batch_size']} × {r['chunk_size']} | {r['images']:,} "
        f"| {r['images_per_second']:.1f} | {r['reference']['images']} "
        f"| {r['reference']['max_abs_log_s']:.4f} "
        f"| {r['reference']['max_abs_log_p']:.4f} "
        f"| {r['reference']['max_threshold_lid_change']} |"
        for name, r in runs.items()
    )
    cpu = (
        f" The same exact spectra take {cpu_seconds:.2f} s per image on the 2 cores "
        "(`benchmarks/lid_speed.py`, trained Glow, D = 1,024)."
        if cpu_seconds
        else ""
    )
    return f"""## Exact LID spectra on an accelerator (`benchmarks/lid_offload.py`)

Spectra of published LID runs computed away from the data pipeline and merged into
the run directories' caches; float32, matmul and convolution precision "highest";
images per call × JVPs at once; the rate counts compilation. "Checked": ID test
images that the CPU had computed, recomputed there; against the CPU's rows, the
largest |Δ log σ| over singular values above e⁻¹⁰, the largest |Δ log p| (nats) and
the largest change of threshold LID at log τ ∈ {{−6, −3, 0}}. A run directory
filled in several calls has a row per call; every call rechecks the same images, so
the Δ columns also show how far the accelerator's results move between calls.{cpu}

| run | device | jax | D | batch | images | images/s | checked | Δ log σ | Δ log p \
| Δ LID |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}
"""


def _met_all(row: dict, bar: float) -> bool:
    """Every error of the mean within the bar: typical and worst, τ and δ."""
    return all(
        row[sweep][k] <= bar
        for sweep in ("threshold", "lidl")
        for k in ("error_of_mean_at_typical", "max_error_of_mean_on_grid")
    )


def _limits_table(r: dict, bar: float, goal: float, product_cost: float | None) -> str:
    d = r["num_dims"]
    rows = sorted(r["rows"], key=lambda x: (x["work"], x["num_probes"]))
    lines = [
        f"**D = {d:,}**, {r['flow']}, {r['images']} images.",
        "",
        "| probes × steps | work | work / D | ℓ: typical | ℓ: worst | δ: typical "
        "| δ: worst | ℓ: per image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        t, s = x["threshold"], x["lidl"]
        mark = " ✓" if _met_all(x, bar) else ""
        lines.append(
            f"| {x['num_probes']} × {x['num_steps']}{mark} | {x['work']:,} "
            f"| {x['work'] / d:.2f} | {t['error_of_mean_at_typical']:.1%} "
            f"| {t['max_error_of_mean_on_grid']:.1%} "
            f"| {s['error_of_mean_at_typical']:.1%} "
            f"| {s['max_error_of_mean_on_grid']:.1%} "
            f"| {t['per_image_error_at_typical']:.1%} |"
        )
    budget = d / goal
    within = [x for x in rows if x["work"] <= budget]

    def worst(x):
        keys = ("error_of_mean_at_typical", "max_error_of_mean_on_grid")
        return max(x[sweep][k] for sweep in ("threshold", "lidl") for k in keys)

    if within:
        best = min(within, key=worst)
        lines += ["", (
            f"Within the work that a {goal:.0f}× speed-up allows (≤ {budget:,.0f} "
            f"JVPs + VJPs per image): at best {worst(best):.1%} "
            f"({best['num_probes']} × {best['num_steps']}), against the {bar:.0%} bar."
        )]  # fmt: skip
    else:
        lines += ["", f"No setting fits the work of a {goal:.0f}× speed-up "
                      f"(≤ {budget:,.0f} JVPs + VJPs per image)."]  # fmt: skip
    enough = [x for x in rows if _met_all(x, bar)]
    if enough:
        least = enough[0]
        bound = d / least["work"]
        cost = (
            f"; at this machine's cost per SLQ product ({product_cost:.1f}× an "
            f"exact column, below) {bound / product_cost:.2f}×"
            if product_cost
            else ""
        )
        lines.append(
            f"Least work meeting every {bar:.0%} bar (✓): {least['num_probes']} × "
            f"{least['num_steps']}, {least['work']:,} = {least['work'] / d:.2f} × D, "
            f"so a speed-up of at most {bound:.2f}× even at the exact path's cost "
            f"per JVP{cost} (goal {goal:.0f}×)."
        )
    else:
        lines.append(
            f"None of these settings, up to {rows[-1]['work']:,} JVPs + VJPs "
            f"({rows[-1]['work'] / d:.2f} × D), meets every {bar:.0%} bar."
        )
    return "\n".join(lines)


def _product_cost(lid: dict | None) -> float | None:
    """Seconds per Jacobian product (a JVP or a VJP) of the flow's own SLQ over the
    exact path's seconds per image / D (its D JVPs, SVD and estimators together),
    median over the settings ``lid_speed`` timed at D = 1,024."""
    if not lid:
        return None
    r = lid["slq"]["1024"]
    exact = r["exact"]["seconds_per_image"] / r["num_dims"]
    ratios = sorted(
        m["seconds_per_image"] / slq_work(m["num_probes"], m["num_steps"]) / exact
        for m in r["slq"]
    )
    return ratios[len(ratios) // 2]


def _setting(name: str) -> str:
    """``"PxM"`` as "P × M"."""
    return name.replace("x", " × ")


def _method(name: str) -> str:
    """``"exact"`` or ``"PxM"`` as a table label."""
    return name if name == "exact" else "SLQ " + _setting(name)


def slq_limits_section(r: dict, lid: dict | None = None) -> str:
    """``benchmarks/slq_limits.py``: the work SLQ needs for the 2 % and 0.01 bars."""
    product_cost = _product_cost(lid)
    goals = {int(k): v for k, v in r["goals"].items()}
    tables = "\n\n".join(
        _limits_table(
            r[k], r["bar"], goals[int(k)], product_cost if k == "1024" else None
        )
        for k in ("1024", "3072")
    )
    c, a = r["1024"].get("check"), r["auroc"]
    check = (
        f"Checked against `lid.flow_slq` on the same images and keys at "
        f"{c['num_probes']} × {c['num_steps']}: threshold LID differs by "
        f"{c['mean_abs_threshold']:.3g} on average over images and grid points (at "
        f"most {c['max_abs_threshold']:.3g}), LIDL by {c['mean_abs_lidl']:.3g} (at "
        f"most {c['max_abs_lidl']:.3g}): float32 Lanczos runs on two operators "
        "with the same spectrum round differently; the AUROCs below check it on "
        f"{2 * a['images_per_set'] + a['validation_images']:,} images."
        if c
        else ""
    )
    measured = ""
    if lid and "auroc" in lid:
        m = lid["auroc"]
        slq, name = (
            m["auroc"]["slq"],
            f"{m['slq']['num_probes']}x{m['slq']['num_steps']}",
        )
        measured = (
            f" The flow's own SLQ at {_setting(name)} gave {slq['lid_only']:.3f}, "
            f"{slq['envelope']:.3f} and {slq['rank_and']:.3f} on these images "
            "(`lid_speed`, above)"
        )
        same = [x["auroc"] for x in a["rows"] if x["method"] == name]
        if same:
            gap = max(abs(same[0][k] - slq[k]) for k in slq)
            measured += f"; the stand-in with the same keys differs by {gap:.3g}"
        measured += "."
    auroc_rows = "\n".join(
        f"| {_method(x['method'])} | {x['work']:,} "
        f"| {x['auroc']['lid_only']:.3f} | {x['auroc']['envelope']:.3f} "
        f"| {x['auroc']['rank_and']:.3f} | {x['largest_difference']:.3f} |"
        for x in a["rows"]
    )
    cost_line = (
        f"On these cores each Jacobian product of the flow's own SLQ (a JVP or a "
        f"VJP; a Lanczos step takes one of each) costs {product_cost:.1f}× the exact "
        "path's time per image / D (its D JVPs in batches of 128, the SVD and the "
        "estimators; median over the settings of `lid_speed` at D = 1,024)."
        if product_cost
        else ""
    )
    notes = "".join(f"\n{line}\n" for line in (check, cost_line) if line)
    return f"""## How much work SLQ needs (`benchmarks/slq_limits.py`)

Lanczos on JᵀJ = V diag(σ²) Vᵀ from a probe v builds the same quadrature as Lanczos
on diag(σ²) from Vᵀv, so `lid.slq` on the stand-in decoder z ↦ σ ⊙ (Vᵀz), built from
each image's exact SVD, gives the flow's own SLQ estimate at a fraction of the cost
per step; the sweep below goes far past the settings that `lid_speed` can time.
Work: JVPs + VJPs per image of two-sided `lid.flow_slq`, 2 sides × (P + 1) runs ×
m steps × 2; the exact path does D JVPs and one SVD. Errors of the mean LID as in
the SLQ table above (ℓ = log τ: threshold LID, δ: LIDL); ✓: every error of the mean
within {r["bar"]:.0%}. Machine: {r["machine"]}, jax {r["jax"]};
{sum(r["seconds"].values()) / 60:.0f} min.
{notes}
{tables}

What matters for OOD: FMNIST test vs MNIST-5k, {a["images_per_set"]} images each,
rank-AND CDFs from {a["validation_images"]} further test images, threshold LID at
the calibrated log τ = {a["log_tau"]:.2f}; the SLQ keys of `lid_speed`'s AUROC
part.{measured} Goal: every AUROC within {a["goal"]} of exact LID's.

| LID from | work | LID only | envelope | rank-AND | largest abs. Δ |
|---|---|---|---|---|---|
{auroc_rows}
"""


def _ode_setting(row: dict, used: dict) -> str:
    """A solver setting as a table label, naming the experiment's use of it."""
    if row["solver"] in ("heun", "euler"):
        return f"{row['solver'].capitalize()}, {row['setting']} steps"
    mark = used.get((row["t_min"], row["setting"]))
    return f"Tsit5, tolerance {row['setting']:g}" + (f" ({mark})" if mark else "")


def ode_tolerance_section(r: dict) -> str:
    """The README section of ``benchmarks/ode_tolerance.py`` (also printed by it)."""
    labels = {"likelihood": "the detectors' log p", "bits_per_dim": "bits/dim"}
    used = {tuple(v): f"experiment: {labels[k]}" for k, v in r["experiment"].items()}
    rows = []
    for t, ref in r["reference"].items():
        reference = {"t_min": float(t), "solver": "tsit5", "setting": ref["tolerance"]}
        steps = "–".join(map(str, ref["steps"]))
        label = _ode_setting(reference, used)
        rows.append(f"| {float(t):g} | {label} | {steps} | reference | | |")
        for x in (x for x in r["rows"] if x["t_min"] == float(t)):
            bias = " / ".join(
                f"{v:+.3f}".replace("-0.000", "+0.000")
                for v in x["mean_error_bits_per_dim"].values()
            )
            rows.append(
                f"| {float(t):g} | {_ode_setting(x, used)} | "
                f"{'–'.join(map(str, x['steps']))} | "
                f"{x['max_abs_error_nats_per_dim']:.3f} | {bias} | "
                f"{x['spearman']:.3f} |"
            )
    table = "\n".join(rows)
    sets = " / ".join(r["sets"])
    tolerance = next(iter(r["reference"].values()))["tolerance"]
    return f"""## Probability-flow ODE error (`benchmarks/ode_tolerance.py`)

{r["model"]}, D = 784, the first {r["images_per_set"]} test images of each of
{sets}; one Rademacher probe per image, the same in every solve, so the differences
are the solver's. Errors against Tsit5 at tolerance {tolerance:g} from the same start
time (mean error in bits/dim per set: negative means too few bits, the images look
too likely); steps: accepted steps per image, fewest–most; ρ: Spearman's rank
correlation with the reference over both sets. Machine: {r["machine"]}, jax
{r["jax"]}; {r["total_seconds"] / 60:.0f} min.

| from t | solver | steps | largest error, nats/dim | mean error, bits/dim | ρ |
|---|---|---|---|---|---|
{table}
"""


def publish(name: str, result: dict, section) -> None:
    """Prints a benchmark's section; unless ``result`` is from ``--quick``
    (``result["quick"]``), writes ``results/<name>.json`` and regenerates the README."""
    print(section(result))
    if result.get("quick"):
        return
    (HERE / "results" / f"{name}.json").write_text(json.dumps(result, indent=2))
    write()


def render() -> str:
    """The README from the results files."""
    sections = []
    flow = HERE / "results" / "flow_throughput.json"
    if flow.exists():
        sections.append(_flow_section(json.loads(flow.read_text())))
    lid = HERE / "results" / "lid_speed.json"
    if lid.exists():
        sections.append(lid_section(json.loads(lid.read_text())))
    limits = HERE / "results" / "slq_limits.json"
    if limits.exists():
        speed = json.loads(lid.read_text()) if lid.exists() else None
        sections.append(slq_limits_section(json.loads(limits.read_text()), speed))
    flipd = HERE / "results" / "flipd_speed.json"
    if flipd.exists():
        sections.append(flipd_section(json.loads(flipd.read_text())))
    ode = HERE / "results" / "ode_tolerance.json"
    if ode.exists():
        sections.append(ode_tolerance_section(json.loads(ode.read_text())))
    mesh = HERE / "results" / "parallel_speed.json"
    if mesh.exists():
        sections.append(parallel_section(json.loads(mesh.read_text())))
    offload = HERE / "results" / "lid_offload.json"
    if offload.exists():
        cpu = json.loads(lid.read_text())["auroc"]["seconds_per_image"]["exact"]
        sections.append(offload_section(json.loads(offload.read_text()), cpu))
    body = "\n".join(sections) or "No benchmark has been run yet: `make bench`.\n"
    return (
        "# Benchmarks\n\nGenerated by the benchmark scripts from "
        "`benchmarks/results/*.json` (`make bench`); do not edit by hand.\n\n" + body
    )


def write() -> None:
    (HERE / "README.md").write_text(render())
