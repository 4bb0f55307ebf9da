"""Experiment entry point.

    python -m experiments.main --config experiments/configs/glow_fmnist.py \
        --workdir runs/glow_fmnist --mode all

Modes: ``train`` (all stages, resuming), ``score`` (scores.npz, results.json),
``report`` (report.md with plots, and the table on stdout), ``all``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import flow_pipeline, report, tables
from jaxood import data, flows

_CONFIG = config_flags.DEFINE_config_file("config", None, "ml_collections config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_MODE = flags.DEFINE_enum(
    "mode", "all", ["train", "score", "report", "all"], "What to do."
)


# Detectors in the report's plots (the table has them all).
PLOTTED = (
    "likelihood",
    "final_scale",
    "llr",
    "ren_llr",
    "waic",
    "complexity_png",
    "typicality",
    "klods_image_k2",
)
GROUP_DETECTORS = ("typicality", "klods_image_k2")


def write_report(config, workdir: Path, sets, params) -> str:
    """Writes report.md with its plots; returns the compact AUROC tables for stdout."""
    results = json.loads((workdir / "results.json").read_text())
    scores = dict(np.load(workdir / "scores.npz"))
    plotted = [d for d in PLOTTED if d in results["detectors"]]
    grouped = [d for d in GROUP_DETECTORS if d in results["groups"]["5"]["auroc"]]
    ood_sets = [k.removeprefix("ood/") for k in sets if k.startswith("ood/")]
    report.plot_roc(scores, plotted, ood_sets, workdir / "roc.png")
    report.plot_histograms(scores, plotted, ood_sets, workdir / "histograms.png")
    report.plot_training(workdir, list(results["training"]), workdir / "training.png")
    report.plot_group_sizes(results, grouped, workdir / "groups.png")
    model = flow_pipeline.build_model(config)
    rc = config.report
    for stage in ("id", "general"):
        samples = flows.sample(
            model,
            params[stage],
            jax.random.key(config.seed),
            rc.num_samples,
            rc.sample_temperature,
        )
        report.plot_image_grid(
            np.asarray(data.to_uint8(samples)),
            workdir / f"samples_{stage}.png",
            f"{stage} model samples, temperature {rc.sample_temperature}",
        )
    table = report.ood_table(results, results["detectors"])
    stages = list(results["bpd"])
    bpd_rows = "\n".join(
        f"| {name.removeprefix('ood/')} | "
        + " | ".join(f"{results['bpd'][s][name]:.3f}" for s in stages)
        + " |"
        for name in results["bpd"]["id"]
    )
    training = "\n".join(
        f"| {s} | {t['steps']} | {t['selected']} at {t['selected_step']} | "
        f"{t['val_bpd']:.3f} | "
        f"{t['train_seconds'] / 60:.1f} | {t['num_skipped']} |"
        for s, t in results["training"].items()
    )
    missing = [
        name
        for name, present in (
            ("`ren_llr` (background model)", "ren_llr" in results["detectors"]),
            ("`waic` (ensemble)", "waic" in results["detectors"]),
        )
        if not present
    ]
    missing_note = (
        f"Not scored in this run: {', '.join(missing)}: their models are not trained "
        "here (`make reproduce` trains them).\n"
        if missing
        else ""
    )
    text = f"""# {config.name}: Glow OOD report

Command: `{config.command}`. Model: {dict(config.model)}. In-distribution:
{config.data.id_dataset} (resized to {config.data.image_size}px). General data:
{results["general_data"]}

## OOD detection, point-wise

{table}

{missing_note}
![ROC curves](roc.png)

![Score histograms](histograms.png)

## Group tests (typicality, KLODS-R)

{report.group_table(results, grouped)}

![AUROC against group size](groups.png)

Typicality test decisions (bootstrap threshold at α = {config.scoring.alpha} from
{config.scoring.bootstrap_resamples} resampled ID validation groups; fraction of groups
flagged as OOD, first shuffle; Ĥ = {results["typicality_entropy_nats"]:.1f} nats):

{report.typicality_test_table(results)}

## Bits per dimension (mean over each evaluation set, bin midpoints)

| set | {" | ".join(stages)} |
|---|{"---|" * len(stages)}
{bpd_rows}

## Training

| stage | steps | params used | validation bits/dim | minutes | skipped steps |
|---|---|---|---|---|---|
{training}

![Training curves](training.png)

![ID samples](samples_id.png) ![General samples](samples_general.png)
"""
    (workdir / "report.md").write_text(text)
    return (
        "AUROC, OOD positive (intervals, AUPR, FPR95 in report.md):\n\n"
        + tables.auroc_table(results)
        + "\n\n"
        + report.group_table(results, grouped)
    )


def main(argv) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config = _CONFIG.value
    if config is None:
        sys.exit("--config is required, e.g. experiments/configs/glow_fmnist.py")
    workdir = Path(_WORKDIR.value)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    mode = _MODE.value
    sets = flow_pipeline.load_sets(config)
    params = flow_pipeline.train_all(config, workdir, sets)
    if mode == "train":
        return
    if mode in ("score", "all") or not (workdir / "results.json").exists():
        flow_pipeline.score_all(config, workdir, sets, params)
    if mode in ("report", "all"):
        table = write_report(config, workdir, sets, params)
        print(table)
        print(f"\nReport: {workdir / 'report.md'}")


if __name__ == "__main__":
    app.run(main)
