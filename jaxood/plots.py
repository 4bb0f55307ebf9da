"""Figures a user looks at rather than reads: ROC curves and score histograms of a
detector, panels of curves or scatter plots, a grid of images, the training curves
of a run directory, a heat map of AUROCs. Each function draws one figure and writes
it to ``path`` (PNG); matplotlib is imported on first use, with the non-interactive
Agg backend.

Scores follow the detectors' convention: anomaly scores, higher = more OOD, and the
ROC curves count OOD as the positive class.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxood import metrics

AUROC_LIMITS = (-0.02, 1.02)  # an AUROC axis on which 0 and 1 stay visible


@functools.cache  # choose the backend once, not at every figure
def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 110) -> None:
    """Writes ``fig`` to ``path`` (tight layout) and closes it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def panels(count: int, width: float, height: float, rows: int = 1):
    """``(fig, axes)`` with ``rows × count`` panels, ``axes`` always 2-D."""
    size = (width * count, height * rows)
    return pyplot().subplots(rows, count, figsize=size, squeeze=False)


def roc_and_histograms(
    scores: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]],
    path: str | Path,
) -> None:
    """ROC curves (top row) and score histograms (bottom row), one column per
    detector.

    Args:
        scores: ``{detector: (scores_in, {ood_name: scores_out})}``, anomaly scores.
            Non-finite scores count as the most anomalous (as
            ``metrics.auroc(..., nonfinite="most_anomalous")``) and are left out of
            the histograms.
        path: the PNG to write.
    """
    fig, axes = panels(len(scores), 4, 3.8, rows=2)
    for (roc, hist), (name, (s_in, outs)) in zip(axes.T, scores.items(), strict=True):
        for ood, s_out in outs.items():
            fpr, tpr = metrics.roc_curve(s_in, s_out, nonfinite="most_anomalous")
            auc = metrics.auroc(s_in, s_out, nonfinite="most_anomalous")
            roc.plot(fpr, tpr, label=f"{ood} ({auc:.2f})")
        roc.plot([0, 1], [0, 1], ":", color="grey")
        roc.set(title=name, xlabel="FPR (ID flagged)", ylabel="TPR (OOD caught)")
        groups = {"ID": np.asarray(s_in)} | {k: np.asarray(v) for k, v in outs.items()}
        finite = np.concatenate([g[np.isfinite(g)] for g in groups.values()])
        low, high = np.percentile(finite, [0.5, 99.5])  # long tails squash the rest
        for label, v in groups.items():
            hist.hist(np.clip(v[np.isfinite(v)], low, high), np.linspace(low, high, 60),
                      density=True, histtype="step", label=label)  # fmt: skip
        hist.set(xlabel="anomaly score (higher = OOD)")
        if outs:
            roc.legend(fontsize=7, loc="lower right")
        hist.legend(fontsize=7)
    save(fig, path)


def line_panels(
    specs: Sequence[Mapping], path: str | Path, width: float = 4.5, height: float = 3.4
) -> None:
    """One panel per spec, side by side.

    Args:
        specs: mappings with ``series``, ``{label: (x, y)}`` or ``(x, y, yerr)``,
            drawn as lines (markers when a series has at most 20 points; points
            alone with ``scatter=True``, the first series on top), and optionally
            ``title``, ``xlabel``, ``ylabel``, ``xscale``, ``ylim`` and ``vline``
            (an x marked by a dotted line, e.g. a chosen threshold).
        path: the PNG to write.
    """
    fig, axes = panels(len(specs), width, height)
    for ax, spec in zip(axes[0], specs, strict=True):
        for i, (label, (x, y, *yerr)) in enumerate(spec["series"].items()):
            if spec.get("scatter"):  # the first series (ID, often the smaller) on top
                ax.scatter(x, y, s=6, alpha=0.5, label=label, zorder=-i)
                continue
            marker = "o" if len(x) <= 20 else None
            ax.errorbar(x, y, yerr=yerr[0] if yerr else None, marker=marker,
                        markersize=4, label=label)  # fmt: skip
        if "vline" in spec:
            ax.axvline(spec["vline"], color="grey", linestyle=":")
        keys = ("title", "xlabel", "ylabel", "xscale", "ylim")
        ax.set(**{k: spec[k] for k in keys if k in spec})
        if spec["series"]:
            ax.legend(fontsize=7)
    save(fig, path)


def image_grid(
    images: np.ndarray, path: str | Path, title: str = "", columns: int = 8
) -> None:
    """The first whole rows of ``images`` (uint8 ``(N, H, W, 1 or 3)``) as a grid."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"image_grid wants (N, H, W, 1 or 3), got {images.shape}.")
    rows = max(len(images) // columns, 1)
    fig, axes = pyplot().subplots(
        rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), squeeze=False
    )
    for ax, image in zip(axes.ravel(), images[: rows * columns], strict=False):
        grey = image.shape[-1] == 1
        ax.imshow(image[..., 0] if grey else image, cmap="gray", vmin=0, vmax=255)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    save(fig, path)


def training_curves(
    stages: Mapping[str, str | Path], metric: str, path: str | Path
) -> None:
    """Training and validation curves of ``metric`` (e.g. ``"bpd"``) from the
    ``metrics.jsonl`` of each stage directory (:func:`jaxood.io.fit_stage` writes
    it); stages restored rather than trained have none and are named in the title.
    """
    fig, ax = pyplot().subplots(figsize=(6, 3.5))
    restored = []
    for label, folder in stages.items():
        log = Path(folder) / "metrics.jsonl"
        if not log.exists():
            restored.append(label)
            continue
        records = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        train = [(r["step"], r[metric]) for r in records if metric in r]
        val = [(r["step"], r[f"val_{metric}"]) for r in records if f"val_{metric}" in r]
        if train:
            ax.plot(*zip(*train, strict=True), label=f"{label} train")
        if val:
            ax.plot(*zip(*val, strict=True), "o--", label=f"{label} validation")
    ax.set(xlabel="step", ylabel=metric)
    if restored:
        ax.set_title(f"restored, not trained here: {', '.join(restored)}", fontsize=8)
    if ax.get_lines():
        ax.legend(fontsize=7)
    save(fig, path)


def auroc_heatmap(
    grid: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    path: str | Path,
    title: str = "",
) -> None:
    """A ``(len(rows), len(columns))`` grid of AUROCs, 0.5 white, each cell written."""
    grid = np.asarray(grid)
    if grid.shape != (len(rows), len(columns)):
        raise ValueError(f"grid {grid.shape} vs {len(rows)} rows, {len(columns)} cols.")
    fig, ax = pyplot().subplots(
        figsize=(3 + 1.1 * len(columns), 1.2 + 0.22 * len(rows))
    )
    ax.imshow(grid, cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    ax.set_title(title, fontsize=8)
    save(fig, path)
