"""Per-run reports: ``report.md`` (the tables of ``experiments.tables`` plus plots)
and a compact table on stdout."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from experiments import tables
from jaxood import data, flows, plots, vae

PLOTTED = ("likelihood", "final_scale", "llr", "ren_llr", "waic", "complexity_png")
GROUPED = ("typicality", "klods_image_k2")
AUROC_AXIS = (-0.02, 1.02)  # 0 and 1 stay visible


def write_report(
    workdir: Path, title: str, block: str, figures: dict, command: str
) -> str:
    """``report.md``: the title, the command, the generated tables, then the figures
    ``{caption: file}``; returns the tables for stdout."""
    images = "".join(f"\n\n![{caption}]({file})" for caption, file in figures.items())
    text = tables.with_source(block, command, "results.json")
    (workdir / "report.md").write_text(f"# {title}\n\n{text}{images}\n")
    return f"(plots in {workdir / 'report.md'})\n\n{block}"


def plot_group_sizes(results: dict, detectors, path: Path) -> None:
    """AUROC against group size (1 = point-wise) per detector and OOD set."""
    groups, sizes = results["groups"], [1] + [int(m) for m in results["groups"]]

    def curve(d, ood):  # the point-wise AUROC, then mean ± std over the shuffles
        per = [g["auroc"][d][ood] for g in groups.values()]
        point = results["metrics"][d][ood]["auroc"]
        return sizes, [point] + [g["mean"] for g in per], [0] + [g["std"] for g in per]

    plots.line_panels(
        [{"title": d, "xlabel": "group size M", "ylabel": "AUROC", "ylim": AUROC_AXIS,
          "series": {o: curve(d, o) for o in results["metrics"][d]}}
         for d in detectors], path)  # fmt: skip


def plot_training_length(sweep: dict, path: Path) -> None:
    """``llr`` AUROC per OOD set against the training steps of the general model
    (left) and of the ID model (right), the other model final."""
    plots.line_panels(
        [{"xlabel": f"{stage} model: training steps", "ylabel": "llr AUROC",
          "ylim": AUROC_AXIS, "series": {
              ood: ([int(s) for s in rows], [r["llr"][ood] for r in rows.values()])
              for ood in next(iter(rows.values()))["llr"]}}
         for stage, rows in sweep.items()], path)  # fmt: skip


def flow_report(config, workdir: Path, results: dict, params: dict, command: str):
    """Writes ``report.md`` and plots of a flow run; returns the stdout table."""
    from experiments.flow_pipeline import build_model

    m = results["metrics"]
    sets = list(m["likelihood"])
    scores = dict(np.load(workdir / "scores.npz"))
    plots.roc_and_histograms(
        {d: (scores[f"id_test/{d}"], {o: scores[f"ood/{o}/{d}"] for o in sets})
         for d in PLOTTED if d in m}, workdir / "scores.png")  # fmt: skip
    stages = {s: workdir / s for s in results["training"]}
    plots.training_curves(stages, "bpd", workdir / "training.png")
    plot_group_sizes(results, GROUPED, workdir / "groups.png")
    model, rc = build_model(config), config.report
    for stage in ("id", "general"):
        x = flows.sample(model, params[stage], jax.random.key(config.seed),
                         rc.num_samples, rc.sample_temperature)  # fmt: skip
        title = f"{stage} model, temperature {rc.sample_temperature}"
        path = workdir / f"samples_{stage}.png"
        plots.image_grid(np.asarray(data.to_uint8(x)), path, title)
    figures = {
        "ROC curves and score histograms": "scores.png",
        "AUROC against group size": "groups.png", "Training curves": "training.png",
        "ID samples": "samples_id.png", "General samples": "samples_general.png",
    }  # fmt: skip
    if "training_length" in results:
        plot_training_length(results["training_length"], workdir / "length.png")
        figures["Likelihood ratio against the length of training"] = "length.png"
    missing = [d for d in ("ren_llr", "waic") if d not in m]
    block = tables.flow_block(results) + (
        f"\n\nNot scored (their models are not here): {missing}." * bool(missing)
    )
    write_report(workdir, f"{config.name}: Glow OOD report", block, figures, command)
    group = tables.group_rows(results["groups"], GROUPED, sets)
    return (
        f"AUROC, OOD positive (intervals in {workdir / 'report.md'}):\n\n"
        + tables.md_table(
            ["detector", *sets],
            tables.auroc_rows(m, sets, lambda v: f"{v['auroc']:.3f}"),
        )
        + "\n\n"
        + tables.md_table(["detector", "M", *sets], group)
    )


def vae_report(config, workdir: Path, results, all_scores, params, command) -> str:
    """Writes ``report.md`` and plots of the VAE run; returns its table."""
    from experiments.vae_pipeline import build_model

    pairs, kinds = list(results["pairs"]), list(results["models"])
    fig, axes = plots.panels(len(kinds), 4, 2.6, rows=len(pairs))
    for row, pair in zip(axes, pairs, strict=True):
        setting, ood = pair.split("→")
        for ax, kind in zip(row, kinds, strict=True):
            for name, label in (("id_test", setting), (f"ood/{ood}", ood)):
                ax.hist(all_scores[setting, kind][f"{name}/hole"], bins=40,
                        alpha=0.6, label=label, density=True)  # fmt: skip
            ax.set_title(f"{kind}: {pair}", fontsize=8)
            ax.set_xlabel("hole indicator [nats]", fontsize=7)
            ax.legend(fontsize=6)
    plots.save(fig, workdir / "hole_histograms.png")
    scaling = {k: ([float(s) for s in c], list(c.values()))
               for k, c in results["scaling"].items()}  # fmt: skip
    plots.line_panels([{"series": scaling, "xlabel": "OOD pixel scale s",
                        "ylabel": "hole-indicator AUROC", "ylim": AUROC_AXIS}],
                      workdir / "scaling.png")  # fmt: skip
    for (setting, kind), p in params.items():
        num = config.report.num_samples
        x = vae.sample(build_model(config, kind), p, jax.random.key(config.seed), num)
        plots.image_grid(np.asarray(np.round(np.asarray(x) * 255), np.uint8),
                         workdir / f"samples_{setting}_{kind}.png",
                         f"{kind} VAE on {setting}: decoder means")  # fmt: skip
    figures = {"hole indicator": "hole_histograms.png", "scaling": "scaling.png"}
    return write_report(workdir, f"{config.name}: VAE OOD report",
                        tables.vae_block(results), figures, command)  # fmt: skip


def dose_report(config, workdir: Path, results: dict, command: str) -> str:
    """Writes ``report.md`` with the DoSE tables and a heat map of the single-
    feature AUROCs; returns the tables."""
    for setting, s in results["settings"].items():
        single = s["ablation"]["single_feature"]
        oods = list(next(iter(single.values())))
        grid = np.array([[v[o] for o in oods] for v in single.values()])
        plots.auroc_heatmap(grid, list(single), oods,
                            workdir / f"single_features_{setting}.png",
                            f"{setting}: AUROC of DoSE on one feature")  # fmt: skip
    return write_report(workdir, f"{config.name}: density of states",
                        tables.dose_block(results),
                        {f"single features, {s}": f"single_features_{s}.png"
                         for s in results["settings"]}, command)  # fmt: skip


def diffusion_report(config, workdir: Path, results, samples, command) -> str:
    """Writes ``report.md`` with the tables, samples, FLIPD-vs-t0 curves and a
    likelihood-vs-FLIPD scatter; returns the stdout table."""
    figures = {}
    for setting, s in results["settings"].items():
        plots.image_grid(samples[setting], workdir / f"samples_{setting}.png",
                        f"{setting}: probability-flow ODE samples")  # fmt: skip
        scores = dict(np.load(workdir / setting / "scores.npz"))
        knee, names = s["t0s"].index(s["t0_knee"]), list(s["curves"])
        label = {n: n.removeprefix("ood/") for n in names}
        plots.line_panels([
            {"series": {label[n]: (s["curve_t0s"], s["curves"][n]) for n in names},
             "xscale": "log", "xlabel": "t0", "ylabel": "mean FLIPD",
             "vline": s["t0_knee"]},
            {"series": {label[n]: (scores[f"{n}/log_p"], scores[f"{n}/flipd"][:, knee])
                        for n in names}, "scatter": True,
             "xlabel": "log p(y) [nats]", "ylabel": f"FLIPD, t0 = {s['t0_knee']:.3g}"},
        ], workdir / f"flipd_{setting}.png", width=5.5, height=4)  # fmt: skip
        figures[f"samples, {setting}"] = f"samples_{setting}.png"
        figures[f"FLIPD, {setting}"] = f"flipd_{setting}.png"
    return write_report(workdir, f"{config.name}: diffusion OOD report",
                        tables.diffusion_block(results), figures, command)  # fmt: skip
