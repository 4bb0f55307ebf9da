"""Figures of published results, drawn from the committed results files only (as the
tables are), so that ``python -m experiments.tables`` redraws them after a rerun.

``lid_tau``: at which τ threshold LID tells the two test sets apart, on every image,
for both flows. For FMNIST → MNIST-5k and the reverse pair: each model's LID-only
AUROC over the sweep of log τ (a bound: the best τ is read off the test pair), with
the τ each rule picks from ID data alone marked on the curve (lPCA-calibrated, the
authors' −3, widest ID LID), and the mean threshold LID of the ID and OOD test
images over the same sweep."""

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
# Each τ rule: its label, then its marker and size (hollow, so that two rules that
# pick nearly the same τ, such as -2.99 and -3, both stay visible).
TAU_RULES = {"calibrated": ("o", 9), "log τ = −3": ("s", 5), "widest ID LID": ("^", 7)}


def at_widest_tau(r: dict) -> dict:
    """The part of LID results ``r`` at the τ where the ID validation images' LID
    varies most (``mean_lid`` and ``pairs``, as at the other fixed τ)."""
    (widest,) = [v for label, v in r["fixed_tau"].items() if "widest" in label]
    return widest


def rule_points(r: dict, ood: str) -> dict[str, tuple[float, float]]:
    """Rule label -> (log τ, LID-only AUROC) of results ``r`` on the OOD set ``ood``."""
    fixed = {label.split()[0]: v for label, v in r["fixed_tau"].items()}
    widest_tau = r["rank_and_both"]["log_taus"][1]
    at = {"calibrated": (r["log_tau"], r["pairs"]),
          "log τ = −3": (-3.0, fixed["-3"]["pairs"]),
          "widest ID LID": (widest_tau, at_widest_tau(r)["pairs"])}  # fmt: skip
    return {k: (tau, pairs[ood]["lid_only"]["auroc"]) for k, (tau, pairs) in at.items()}


def lid_tau(results: dict[str, dict], anchor: tuple[float, str], path: Path) -> None:
    """The ``lid_tau`` figure from ``results`` (name -> results of ``LID_RUNS``);
    ``anchor``: the seed's dual envelope and its source, drawn as a line."""
    plt = plots.pyplot()
    fig, axes = plots.panels(2, 5.0, 4.2, rows=2)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (pair, runs) in zip(axes, LID_RUNS.items(), strict=True):
        auroc, curves = row
        for colour, (name, ood, model) in zip(colours, runs, strict=False):
            r = results[name]
            taus, sweep = r["tau_sweep"]["log_taus"], r["tau_sweep"]["lid_only"][ood]
            auroc.plot(taus, sweep, color=colour, label=model)
            for rule, (tau, value) in rule_points(r, ood).items():
                marker, size = TAU_RULES[rule]
                label = rule if colour == colours[0] else None  # each rule once
                auroc.plot(tau, value, marker, color=colour, markersize=size,
                           markerfacecolor="none", label=label)  # fmt: skip
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
        auroc.set(title=f"{pair}: LID only", xlabel="log τ",
                  ylabel="AUROC (OOD positive)", ylim=plots.AUROC_LIMITS)  # fmt: skip
        curves.set(title=f"{pair}: mean threshold LID", xlabel="log τ",
                   ylabel="LID (of D = 1,024)")  # fmt: skip
        # Below the axes: inside, it would hide part of a curve.
        auroc.legend(
            fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=3
        )
        curves.legend(fontsize=6)
    plots.save(fig, path)


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
