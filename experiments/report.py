"""Per-run reports: ``report.md`` (the tables of ``experiments.tables`` plus plots)
and a compact table on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from experiments import tables
from jaxood import data, flows, metrics, vae

PLOTTED = ("likelihood", "final_scale", "llr", "ren_llr", "waic", "complexity_png")
GROUPED = ("typicality", "klods_image_k2")


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(workdir: Path, title: str, block: str, figures: dict) -> None:
    """``report.md``: the title, the generated tables, then ``{caption: file}``."""
    images = "".join(f"\n\n![{caption}]({file})" for caption, file in figures.items())
    (workdir / "report.md").write_text(f"# {title}\n\n{block}{images}\n")


def auroc_only(per_detector: dict, sets) -> list[list]:
    """Rows ``detector | AUROC`` per set (no intervals): the stdout tables."""
    return [[d] + [f"{per[s]['auroc']:.3f}" for s in sets]
            for d, per in per_detector.items()]  # fmt: skip


def _panels(names, height: float, rows: int = 1):
    size = (4 * len(names), height * rows)
    return plt.subplots(rows, len(names), figsize=size, squeeze=False)


def plot_scores(scores: dict, detectors, ood_sets, path: Path) -> None:
    """ROC curves (top) and score histograms (bottom), one column per detector."""
    fig, axes = _panels(detectors, 3.8, rows=2)
    for (roc, hist), d in zip(axes.T, detectors, strict=True):
        s_in = scores[f"id_test/{d}"]
        groups = {"ID test": s_in} | {o: scores[f"ood/{o}/{d}"] for o in ood_sets}
        for ood in ood_sets:
            fpr, tpr = metrics.roc_curve(s_in, groups[ood], nonfinite="most_anomalous")
            auc = metrics.auroc(s_in, groups[ood], nonfinite="most_anomalous")
            roc.plot(fpr, tpr, label=f"{ood} ({auc:.2f})")
        roc.plot([0, 1], [0, 1], ":", color="grey")
        roc.set(title=d, xlabel="FPR (ID flagged)", ylabel="TPR (OOD caught)")
        finite = np.concatenate([g[np.isfinite(g)] for g in groups.values()])
        low, high = np.percentile(finite, [0.5, 99.5])
        for label, v in groups.items():
            hist.hist(np.clip(v, low, high), np.linspace(low, high, 60),
                      density=True, histtype="step", label=label)  # fmt: skip
        hist.set(xlabel="anomaly score (higher = OOD)")
        roc.legend(fontsize=7, loc="lower right")
        hist.legend(fontsize=7)
    save_figure(fig, path)


def plot_image_grid(images: np.ndarray, path: Path, title: str, columns: int = 8):
    rows = max(len(images) // columns, 1)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4))
    for ax, image in zip(np.ravel(axes), images[: rows * columns], strict=False):
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def plot_training(workdir: Path, stages, path: Path, metric: str) -> None:
    """Training and validation curves of the stages trained in ``workdir``."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    restored = [s for s in stages if not (workdir / s / "metrics.jsonl").exists()]
    for stage in (s for s in stages if s not in restored):
        text = (workdir / stage / "metrics.jsonl").read_text()
        records = [json.loads(x) for x in text.splitlines() if x.strip()]
        ax.plot(
            [r["step"] for r in records],
            [r[metric] for r in records],
            label=f"{stage} train",
        )
        val = [(r["step"], r[f"val_{metric}"]) for r in records if f"val_{metric}" in r]
        if val:
            ax.plot(*zip(*val, strict=True), "o--", label=f"{stage} validation")
    ax.set(xlabel="step", ylabel=metric)
    if restored:
        ax.set_title(f"restored, not trained here: {', '.join(restored)}", fontsize=8)
    if ax.get_lines():
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_group_sizes(results: dict, detectors, path: Path) -> None:
    """AUROC against group size (1 = point-wise) per detector and OOD set."""
    groups = results["groups"]
    sizes = [1] + [int(m) for m in groups]
    fig, axes = _panels(detectors, 3.2)
    for ax, d in zip(axes[0], detectors, strict=True):
        for ood, point in results["metrics"][d].items():
            per = [g["auroc"][d][ood] for g in groups.values()]
            ax.errorbar(
                sizes,
                [point["auroc"]] + [g["mean"] for g in per],
                yerr=[0.0] + [g["std"] for g in per],
                marker="o",
                label=ood,
            )
        ax.set(title=d, xlabel="group size M", ylabel="AUROC", ylim=(-0.02, 1.02))
        ax.set_xticks(sizes)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def plot_training_length(sweep: dict, path: Path) -> None:
    """``llr`` AUROC per OOD set against the training steps of the general model
    (left) and of the ID model (right), the other model final."""
    fig, axes = _panels(list(sweep), 3.2)
    for ax, (stage, rows) in zip(axes[0], sweep.items(), strict=True):
        steps = [int(s) for s in rows]
        for ood in next(iter(rows.values()))["llr"]:
            ax.plot(steps, [r["llr"][ood] for r in rows.values()], "o-", label=ood)
        ax.set(xlabel=f"{stage} model: training steps", ylabel="llr AUROC",
               ylim=(-0.02, 1.02))  # fmt: skip
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def flow_report(config, workdir: Path, results: dict, params: dict, command: str):
    """Writes ``report.md`` and plots of a flow run; returns the stdout table."""
    from experiments.flow_pipeline import build_model

    m = results["metrics"]
    sets = list(m["likelihood"])
    scores = dict(np.load(workdir / "scores.npz"))
    plot_scores(scores, [d for d in PLOTTED if d in m], sets, workdir / "scores.png")
    plot_training(workdir, list(results["training"]), workdir / "training.png", "bpd")
    plot_group_sizes(results, GROUPED, workdir / "groups.png")
    model, rc = build_model(config), config.report
    for stage in ("id", "general"):
        x = flows.sample(model, params[stage], jax.random.key(config.seed),
                         rc.num_samples, rc.sample_temperature)  # fmt: skip
        title = f"{stage} model, temperature {rc.sample_temperature}"
        plot_image_grid(np.asarray(data.to_uint8(x)), workdir / f"samples_{stage}.png",
                        title)  # fmt: skip
    figures = {
        "ROC curves and score histograms": "scores.png",
        "AUROC against group size": "groups.png", "Training curves": "training.png",
        "ID samples": "samples_id.png", "General samples": "samples_general.png",
    }  # fmt: skip
    if "training_length" in results:
        plot_training_length(results["training_length"], workdir / "length.png")
        figures["Likelihood ratio against the length of training"] = "length.png"
    missing = [d for d in ("ren_llr", "waic") if d not in m]
    block = (
        tables.flow_block(results, command, "results.json")
        + "\n\nDetectors:\n\n"
        + "\n".join(f"- `{k}`: {v}" for k, v in results["detectors"].items())
        + (f"\n\nNot scored (their models are not here): {missing}." if missing else "")
    )
    write_report(workdir, f"{config.name}: Glow OOD report", block, figures)
    group = tables.group_rows(results["groups"], GROUPED, sets)
    return (
        f"AUROC, OOD positive (intervals in {workdir / 'report.md'}):\n\n"
        + tables.md_table(["detector", *sets], auroc_only(m, sets))
        + "\n\n"
        + tables.md_table(["detector", "M", *sets], group)
    )


def vae_report(config, workdir: Path, results, all_scores, params, command) -> str:
    """Writes ``report.md`` and plots of the VAE run; returns its table."""
    from experiments.vae_pipeline import build_model

    pairs, kinds = list(results["pairs"]), list(results["models"])
    fig, axes = plt.subplots(len(pairs), len(kinds), squeeze=False,
                             figsize=(4 * len(kinds), 2.6 * len(pairs)))  # fmt: skip
    for row, pair in zip(axes, pairs, strict=True):
        setting, ood = pair.split("→")
        for ax, kind in zip(row, kinds, strict=True):
            for name, label in (("id_test", setting), (f"ood/{ood}", ood)):
                ax.hist(all_scores[setting, kind][f"{name}/hole"], bins=40,
                        alpha=0.6, label=label, density=True)  # fmt: skip
            ax.set_title(f"{kind}: {pair}", fontsize=8)
            ax.set_xlabel("hole indicator [nats]", fontsize=7)
            ax.legend(fontsize=6)
    save_figure(fig, workdir / "hole_histograms.png")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for kind, curve in results["scaling"].items():
        ax.plot([float(s) for s in curve], list(curve.values()), "o-", label=kind)
    ax.set(xlabel="OOD pixel scale s", ylabel="hole-indicator AUROC", ylim=(0, 1))
    ax.legend()
    save_figure(fig, workdir / "scaling.png")
    for (setting, kind), p in params.items():
        num = config.report.num_samples
        x = vae.sample(build_model(config, kind), p, jax.random.key(config.seed), num)
        plot_image_grid(np.asarray(np.round(np.asarray(x) * 255), np.uint8),
                        workdir / f"samples_{setting}_{kind}.png",
                        f"{kind} VAE on {setting}: decoder means")  # fmt: skip
    block = tables.vae_block(results, command, "results.json")
    figures = {"hole indicator": "hole_histograms.png", "scaling": "scaling.png"}
    write_report(workdir, f"{config.name}: VAE OOD report", block, figures)
    return block


def dose_report(config, workdir: Path, results: dict, command: str) -> str:
    """Writes ``report.md`` with the DoSE tables and a heat map of the single-
    feature AUROCs; returns the combined rows for stdout."""
    for setting, s in results["settings"].items():
        single = s["ablation"]["single_feature"]
        oods = list(next(iter(single.values())))
        grid = np.array([[v[o] for o in oods] for v in single.values()])
        fig, ax = plt.subplots(figsize=(3 + 1.1 * len(oods), 1.2 + 0.22 * len(single)))
        ax.imshow(grid, cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
        ax.set_xticks(range(len(oods)), oods, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(len(single)), list(single), fontsize=6)
        ax.set_title(f"{setting}: AUROC of DoSE on one feature", fontsize=8)
        save_figure(fig, workdir / f"single_features_{setting}.png")
    block = tables.dose_block(results, command, "results.json")
    write_report(workdir, f"{config.name}: density of states", block,
                 {f"single features, {s}": f"single_features_{s}.png"
                  for s in results["settings"]})  # fmt: skip
    out = []
    for setting, s in results["settings"].items():
        oods = list(s["dose"][next(iter(s["dose"]))]["all"])
        rows = {f"DoSE ({m}), {family}": per for m, fams in s["dose"].items()
                for family, per in fams.items()}  # fmt: skip
        out.append(
            f"{setting} in-distribution:\n\n"
            + tables.md_table(["detector", *oods], auroc_only(rows, oods))
        )
    return f"AUROC, OOD positive (intervals in {workdir / 'report.md'}):\n\n" + (
        "\n\n".join(out)
    )


def diffusion_report(config, workdir: Path, results, samples, command) -> str:
    """Writes ``report.md`` with the tables, samples, FLIPD-vs-t0 curves and a
    likelihood-vs-FLIPD scatter; returns the stdout table."""
    figures = {}
    for setting, s in results["settings"].items():
        plot_image_grid(samples[setting], workdir / f"samples_{setting}.png",
                        f"{setting}: probability-flow ODE samples")  # fmt: skip
        scores = dict(np.load(workdir / setting / "scores.npz"))
        knee = s["t0s"].index(s["t0_knee"])
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        for name, curve in s["curves"].items():
            label = name.removeprefix("ood/")
            left.plot(s["curve_t0s"], curve, label=label)
            right.scatter(scores[f"{name}/log_p"], scores[f"{name}/flipd"][:, knee],
                          s=4, alpha=0.5, label=label)  # fmt: skip
        left.axvline(s["t0_knee"], color="grey", linestyle=":")
        left.set(xscale="log", xlabel="t0", ylabel="mean FLIPD")
        right.set(xlabel="log p(y) [nats]", ylabel=f"FLIPD, t0 = {s['t0_knee']:.3g}")
        left.legend(fontsize=7)
        save_figure(fig, workdir / f"flipd_{setting}.png")
        figures[f"samples, {setting}"] = f"samples_{setting}.png"
        figures[f"FLIPD, {setting}"] = f"flipd_{setting}.png"
    block = tables.diffusion_block(results, command, "results.json")
    write_report(workdir, f"{config.name}: diffusion OOD report", block, figures)
    return f"(intervals and plots in {workdir / 'report.md'})\n\n" + block
