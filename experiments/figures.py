"""Figures of published results, drawn from the committed results files only (as the
tables are), so that ``python -m experiments.tables`` redraws them after a rerun.

``lid_tau``: where the LID of the two flows separates the LID pair, on every image.
For FMNIST → MNIST-5k and the reverse pair, each model's LID-only AUROC over the
sweep of log τ (a bound: τ read off the test pair), with the τ each rule picks
without OOD data (lPCA-calibrated, the authors' −3, widest ID LID), and the mean
threshold LID of the ID and OOD test images over the same sweep.
"""

from __future__ import annotations

import json
from pathlib import Path

from jaxood import plots

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
FIGURES = ROOT / "experiments" / "figures"
# The LID runs on every image, per pair: (results name, OOD set, model label).
LID_RUNS = {
    "FMNIST → MNIST-5k": [
        ("glow_fmnist_general_images_5000_lid", "mnist_5k", "affine Glow"),
        ("glow_fmnist_spline_5000_lid", "mnist_5k", "spline flow"),
    ],
    "MNIST-5k → FMNIST": [
        ("glow_mnist_5k_general_images_6000_5000_lid", "fashion_mnist", "affine Glow"),
        ("glow_mnist_5k_spline_5000_lid", "fashion_mnist", "spline flow"),
    ],
}
# What each τ rule is drawn with: (results key, marker, label).
TAU_RULES = [("calibrated", "o", "calibrated"), ("-3", "s", "log τ = −3"),
             ("widest", "^", "widest ID LID")]  # fmt: skip


def rule_taus(r: dict) -> dict[str, float]:
    """The log τ each rule chose in results ``r``."""
    widest = r["rank_and_both"]["log_taus"][1]
    return {"calibrated": r["log_tau"], "-3": -3.0, "widest": widest}


def lid_tau(results: dict[str, dict], anchor: tuple[float, str], path: Path) -> None:
    """The ``lid_tau`` figure from ``results`` (name -> results of ``LID_RUNS``);
    ``anchor``: the seed's dual envelope and its source, drawn as a line."""
    plt = plots.pyplot()
    fig, axes = plots.panels(2, 5.0, 3.6, rows=2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (pair, runs) in zip(axes, LID_RUNS.items(), strict=True):
        auroc, curves = row
        for colour, (name, ood, model) in zip(colours, runs, strict=False):
            r = results[name]
            taus, sweep = r["tau_sweep"]["log_taus"], r["tau_sweep"]["lid_only"][ood]
            auroc.plot(taus, sweep, color=colour, label=model)
            for rule, marker, label in TAU_RULES:  # the rules' labels once
                tau = rule_taus(r)[rule]
                at = r["pairs"] if rule == "calibrated" else _fixed(r, tau)
                label = label if colour == colours[0] else None
                value = at[ood]["lid_only"]["auroc"]
                auroc.plot(tau, value, marker, color=colour, label=label)
            for s, style, who in (
                ("id_test", "-", "ID test"),
                (f"ood/{ood}", "--", ood),
            ):
                label = f"{model}, {who}"
                curves.plot(taus, r["lid_curves"][s], style, color=colour, label=label)
        auroc.axhline(0.5, color="grey", linewidth=0.6)
        if pair.startswith("FMNIST"):
            label = f"{anchor[0]:.3f}: {anchor[1]}"
            auroc.axhline(anchor[0], color="black", linestyle=":", label=label)
        title = f"{pair}: LID only, τ chosen on the test pair"
        auroc.set(title=title, xlabel="log τ", ylabel="AUROC (OOD positive)",
                  ylim=plots.AUROC_LIMITS)  # fmt: skip
        curves.set(title=f"{pair}: mean threshold LID", xlabel="log τ",
                   ylabel="LID (of D = 1,024)")  # fmt: skip
        auroc.legend(fontsize=6)
        curves.legend(fontsize=6)
    plots.save(fig, path)


def _fixed(r: dict, tau: float) -> dict:
    """The pairs of ``r`` at the fixed log τ ``tau`` (labelled by its value)."""
    (label,) = [k for k in r["fixed_tau"] if abs(float(k.split()[0]) - tau) < 5e-3]
    return r["fixed_tau"][label]["pairs"]


def write(results_dir: Path = RESULTS, out: Path = FIGURES) -> list[Path]:
    """Draws every figure whose results files are all in ``results_dir``."""
    names = [name for runs in LID_RUNS.values() for name, *_ in runs]
    if not all((results_dir / f"{n}.json").is_file() for n in names):
        return []
    results = {n: json.loads((results_dir / f"{n}.json").read_text()) for n in names}
    references = json.loads((ROOT / "experiments" / "references.json").read_text())
    out.mkdir(exist_ok=True)
    lid_tau(results, tuple(references["lid_anchor"]), out / "lid_tau.png")
    return [out / "lid_tau.png"]
