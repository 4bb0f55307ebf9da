"""Run report: the OOD table, ROC curves, score histograms, samples, training curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jaxood import metrics

COLUMNS = ("auroc", "aupr_in", "aupr_out", "fpr95")


def ood_table(results: dict, descriptions: dict[str, str]) -> str:
    """Markdown table: one row per (detector, OOD set)."""
    n_in = next(iter(next(iter(results["metrics"].values())).values()))["n_in"]
    lines = [
        f"ID test images: {n_in}. OOD positive; AUROC with 95 % bootstrap interval; "
        "FPR95 = fraction of ID flagged at 95 % TPR.",
        "",
        "| detector | OOD set | n | AUROC | AUPR-In | AUPR-Out | FPR95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for detector, per_set in results["metrics"].items():
        for ood, m in per_set.items():
            ci = (
                f" [{m['auroc_ci_low']:.3f}, {m['auroc_ci_high']:.3f}]"
                if "auroc_ci_low" in m
                else ""
            )
            flag = f" ({m['n_nonfinite']} non-finite)" if m["n_nonfinite"] else ""
            lines.append(
                f"| {detector} | {ood} | {m['n_out']} | {m['auroc']:.3f}{ci}{flag} | "
                f"{m['aupr_in']:.3f} | {m['aupr_out']:.3f} | {m['fpr95']:.3f} |"
            )
    lines += ["", *[f"- `{k}`: {v}" for k, v in descriptions.items()]]
    return "\n".join(lines)


def _detector_row(detectors: list[str], height: float):
    """A figure with one panel per detector, and (axis, detector) pairs."""
    fig, axes = plt.subplots(
        1, len(detectors), figsize=(4 * len(detectors), height), squeeze=False
    )
    return fig, zip(axes[0], detectors, strict=True)


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc(
    scores: dict, detectors: list[str], ood_sets: list[str], path: Path
) -> None:
    fig, panels = _detector_row(detectors, 4)
    for ax, detector in panels:
        s_in = scores[f"id_test/{detector}"]
        for ood in ood_sets:
            s_out = scores[f"ood/{ood}/{detector}"]
            fpr, tpr = metrics.roc_curve(s_in, s_out, nonfinite="most_anomalous")
            auc = metrics.auroc(s_in, s_out, nonfinite="most_anomalous")
            ax.plot(fpr, tpr, label=f"{ood} ({auc:.2f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(title=detector, xlabel="FPR (ID flagged)", ylabel="TPR (OOD caught)")
        ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


def plot_histograms(
    scores: dict, detectors: list[str], ood_sets: list[str], path: Path
) -> None:
    fig, panels = _detector_row(detectors, 3.5)
    for ax, detector in panels:
        groups = {"ID test": scores[f"id_test/{detector}"]}
        groups.update({o: scores[f"ood/{o}/{detector}"] for o in ood_sets})
        finite = np.concatenate([g[np.isfinite(g)] for g in groups.values()])
        low, high = np.percentile(finite, [0.5, 99.5])
        bins = np.linspace(low, high, 60)
        for label, values in groups.items():
            ax.hist(
                np.clip(values, low, high),
                bins=bins,
                histtype="step",
                density=True,
                label=label,
            )
        ax.set(title=detector, xlabel="anomaly score (higher = OOD)")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_image_grid(
    images: np.ndarray, path: Path, title: str, columns: int = 8
) -> None:
    n = len(images) - len(images) % columns or len(images)
    rows = max(n // columns, 1)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4))
    for ax, image in zip(np.ravel(axes), images[: rows * columns], strict=False):
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def plot_training(run_dir: Path, stages: list[str], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    restored = []
    for stage in stages:
        file = run_dir / stage / "metrics.jsonl"
        if not file.exists():  # restored from a shipped checkpoint: no curve here
            restored.append(stage)
            continue
        records = [json.loads(x) for x in file.read_text().splitlines() if x.strip()]
        steps = [r["step"] for r in records]
        ax.plot(steps, [r["bpd"] for r in records], label=f"{stage} train")
        val = [(r["step"], r["val_bpd"]) for r in records if "val_bpd" in r]
        if val:
            ax.plot(*zip(*val, strict=True), "o--", label=f"{stage} validation")
    ax.set(xlabel="step", ylabel="bits/dim")
    if restored:
        ax.set_title(f"restored, not trained here: {', '.join(restored)}", fontsize=8)
    if ax.get_lines():
        ax.legend(fontsize=7)
    save_figure(fig, path)


def group_table(results: dict, detectors: list[str]) -> str:
    """Markdown: group AUROC (mean ± std over shuffles) per detector, set and size."""
    groups = results["groups"]
    sizes = list(groups)
    sets = list(next(iter(groups.values()))["auroc"]["typicality"])
    first = groups[sizes[0]]["auroc"]["typicality"][sets[0]]
    lines = [
        f"AUROC over groups, mean ± std over {len(first['per_seed'])} shuffles "
        f"(ID test groups of M: {first['groups_in']} at M = {sizes[0]}).",
        "",
        "| detector | M | " + " | ".join(sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    for detector in detectors:
        for size in sizes:
            per_set = groups[size]["auroc"][detector]
            cells = [
                f"{per_set[s]['mean']:.3f} ± {per_set[s]['std']:.3f}" for s in sets
            ]
            lines.append(f"| {detector} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def typicality_test_table(results: dict) -> str:
    """Markdown: the bootstrap typicality test's decisions per group size."""
    groups = results["groups"]
    sizes = list(groups)
    sets = list(groups[sizes[0]]["typicality_test"]["flagged"])
    lines = [
        "| M | threshold ε (nats) | " + " | ".join(sets) + " |",
        "|---|---|" + "---|" * len(sets),
    ]
    for size in sizes:
        test = groups[size]["typicality_test"]
        cells = [f"{test['flagged'][s]:.3f}" for s in sets]
        lines.append(
            f"| {size} | {test['threshold']:.1f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def plot_group_sizes(results: dict, detectors: list[str], path: Path) -> None:
    """AUROC against group size (1 = point-wise) for each detector and OOD set."""
    groups = results["groups"]
    sizes = [1] + [int(m) for m in groups]
    sets = list(next(iter(groups.values()))["auroc"]["typicality"])
    fig, panels = _detector_row(detectors, 3.2)
    panels = list(panels)
    for ax, detector in panels:
        for ood in sets:
            values = [results["metrics"][detector][ood]["auroc"]]
            errors = [0.0]
            for m in groups:
                g = groups[m]["auroc"][detector][ood]
                values.append(g["mean"])
                errors.append(g["std"])
            ax.errorbar(sizes, values, yerr=errors, marker="o", capsize=3, label=ood)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set(title=detector, xlabel="group size M", ylim=(-0.02, 1.02))
        ax.set_xticks(sizes)
    panels[0][0].set_ylabel("AUROC")
    panels[0][0].legend(fontsize=7)
    save_figure(fig, path)
