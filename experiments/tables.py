"""Generates experiments/README.md and the README's results block from run files.

    python -m experiments.tables [--runs runs]

Nothing here is typed by hand: every number comes from ``runs/<name>/results.json``
(written by ``experiments.main --mode score``); the reference numbers ("anchors") are
the ones of ``shared/specs/methods.md``, quoted with their source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"

# (detector, OOD set) -> list of (value, source) from shared/specs/methods.md.
ANCHORS = {
    ("likelihood", "mnist_5k"): [
        ("0.24", "diffusion VP-SDE, Kamkari et al. 2024 (methods.md 2.12)"),
        ("0.291", "RQ-NSF flow, dgm_geometry guide re-run (2.12)"),
        ("≈0.089", "PixelCNN++, Ren et al. 2019, not confirmed (5.1)"),
    ],
    ("ren_llr", "mnist_5k"): [
        ("≈0.994", "PixelCNN++ background ratio, Ren et al. 2019, not confirmed (5.1)"),
    ],
    ("complexity_jpeg2000", "mnist_5k"): [
        (
            "0.950",
            "JPEG 2000 input complexity on a vanilla VAE, Vacant Holes Table 5 (4.7)",
        ),
    ],
    ("typicality", "mnist_5k"): [
        ("0.452", "typicality M = 1 on a vanilla VAE, Vacant Holes Table 5 (4.7)"),
    ],
}
# Group AUROCs, FMNIST→MNIST (methods.md 3.9: Jiang et al., ICLR 2022 submission,
# Table 1, RealNVP; their "KLOD" is a mean-norm statistic, 3.4). size -> detector ->
# (value, source).
GROUP_ANCHORS = {
    "5": {
        "typicality": ("0.85", "TyTest bs 5, Jiang et al. (3.9)"),
        "klods_image_k2": ("0.96", "third-party KLOD bs 5, Jiang et al. (3.9)"),
    },
    "10": {
        "typicality": ("0.87", "TyTest bs 10, Jiang et al. (3.9)"),
        "klods_image_k2": ("0.97", "third-party KLOD bs 10, Jiang et al. (3.9)"),
    },
}
KLODS_GOAL = 0.99  # issue goal: KLODS-R, groups of 5, FMNIST→MNIST-5k
# Why a detector of ours may sit far from its reference: one clause per detector.
WHY = {
    "likelihood": "a small CPU Glow instead of the references' diffusion model, "
    "RQ-NSF flow or PixelCNN++",
    "ren_llr": "our background model is a Glow (Ren et al. used PixelCNN++, whose "
    "autoregressive likelihood is dominated by local statistics that mutations "
    "keep), trained with one untuned (μ, λ) where Ren et al. tuned both on an OOD "
    "validation set",
    "typicality": "the reference's typicality is the same statistic on a VAE, whose "
    "NLLs of MNIST and Fashion-MNIST sit at other distances from its entropy",
    "complexity_jpeg2000": "input complexity is the NLL minus the code length, so "
    "its ranking follows whichever of the two differs more between the sets; the "
    "reference's NLLs are a VAE's, ours a Glow's, with other gaps between the sets",
}
# The same for the group anchors (Jiang et al.'s RealNVP table).
GROUP_WHY = {
    "typicality": "our Glow is a 2-core CPU model (Jiang et al. trained RealNVP to "
    "convergence) and MNIST is the 5,000-image subset",
    "klods_image_k2": "KLODS-R is a reconstruction of the unpublished estimator, "
    "while the third-party KLOD is ½‖μ̂‖² of whole latent vectors (methods.md 3.4), "
    "on a converged RealNVP",
}
SETS = (
    "mnist_5k",
    "fashion_mnist",
    "animal_mnist",
    "uniform_noise",
    "constant",
    "fashion_mnist_vflip",
    "fashion_mnist_inverted",
)


def _load(runs: Path, name: str) -> dict | None:
    path = runs / name / "results.json"
    return json.loads(path.read_text()) if path.exists() else None


def auroc_table(results: dict) -> str:
    sets = [s for s in SETS if s in next(iter(results["metrics"].values()))]
    head = "| detector | " + " | ".join(sets) + " |"
    lines = [head, "|---" * (len(sets) + 1) + "|"]
    for detector, per_set in results["metrics"].items():
        cells = [f"{per_set[s]['auroc']:.3f}" for s in sets]
        lines.append(f"| {detector} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def anchors_table(results: dict) -> str:
    lines = ["| detector | pair | ours | reference | source |", "|---|---|---|---|---|"]
    notes = []
    for (detector, ood), refs in ANCHORS.items():
        if detector not in results["metrics"]:
            continue
        ours = results["metrics"][detector][ood]["auroc"]
        for value, source in refs:
            lines.append(
                f"| {detector} | FMNIST→{ood} | {ours:.3f} | {value} | {source} |"
            )
        notes.append(_differs(detector, f"FMNIST→{ood}", ours, refs))
    return "\n".join(lines + [""] + [n for n in notes if n])


def _differs(detector: str, pair: str, ours: float, refs) -> str:
    """A sentence when ours is more than 0.05 from a reference, saying why."""
    far = [(v, src) for v, src in refs if abs(float(v.lstrip("≈")) - ours) > 0.05]
    if not far:
        return ""
    quoted = "; ".join(f"{v} ({src})" for v, src in far)
    return (
        f"- `{detector}` on {pair}: ours {ours:.3f} vs {quoted}. Likely why: "
        f"{WHY.get(detector, 'other model and data')}."
    )


def _aurocs(results: dict) -> dict[str, dict[str, float]]:
    """detector -> OOD set -> point-wise AUROC."""
    return {
        d: {o: v["auroc"] for o, v in per.items()}
        for d, per in results["metrics"].items()
    }


def observations(results: dict) -> str:
    """Sentences read off the numbers (so they change when the numbers do)."""
    auc = _aurocs(results)
    lines = []
    four = ("likelihood", "final_scale", "llr", "llr_outlier")
    best = max(four, key=lambda d: auc[d]["mnist_5k"])
    lines.append(
        f"On FMNIST→MNIST-5k the best of the four is `{best}` "
        f"({auc[best]['mnist_5k']:.3f}); the ratios move the raw likelihood's "
        f"{auc['likelihood']['mnist_5k']:.3f} to {auc['llr']['mnist_5k']:.3f} "
        f"(`llr`) and {auc['llr_outlier']['mnist_5k']:.3f} (`llr_outlier`)."
    )
    if auc["llr"]["mnist_5k"] < 0.75:
        lines.append(
            "The ratios stay far from the paper's gains here: a general model of "
            "17 photographs shares little of the pen-stroke-on-black statistics "
            "of digits, so subtracting it removes less of the low-level part of the "
            "likelihood than a model of 80M Tiny Images would."
        )
    inverted = [
        f"`{d}` ({auc[d]['uniform_noise']:.3f})"
        for d in ("llr", "llr_outlier")
        if auc[d]["uniform_noise"] < 0.5
    ]
    if inverted:
        lines.append(
            " and ".join(inverted) + " rank uniform noise as *less* anomalous than "
            "Fashion-MNIST: the general model gives noise an even lower likelihood "
            "than the ID model. The raw likelihood catches noise "
            f"({auc['likelihood']['uniform_noise']:.3f}); ratios are meant to be "
            "read together with it."
        )
    return " ".join(lines)


def baseline_observations(results: dict, ood: str = "mnist_5k") -> str:
    """Sentences on the baselines of this issue, read off the numbers: only those
    whose condition holds are written."""
    auc = _aurocs(results)
    lines = []
    png, jp2 = auc.get("complexity_png", {}), auc.get("complexity_jpeg2000", {})
    if ood in png and ood in jp2 and jp2[ood] < png[ood] - 0.2:
        lines.append(
            f"Input complexity depends on the compressor: PNG gives {png[ood]:.3f} on "
            f"{ood}, lossless JPEG 2000 {jp2[ood]:.3f}. On these 32×32 images JPEG "
            "2000 compresses far less than PNG and its code lengths differ less "
            "between the sets, so it cancels less of the likelihood's bias towards "
            "simple images."
        )
    ren = auc.get("ren_llr", {})
    low = [f"`{o}` ({v:.3f})" for o, v in ren.items() if v < 0.5]
    if low:
        lines.append(
            "Ren et al.'s ratio ranks " + ", ".join(low) + " as *less* anomalous "
            "than the ID test set: the background model, trained on mutated images "
            "with weight decay, gives those inputs a higher likelihood than the ID "
            "model does."
        )
    bpd = results["bpd"]
    members = [k for k in bpd if k.startswith("ensemble_")]
    if "waic" in auc and members:
        worst = max(bpd[k]["id_test"] for k in members)
        if worst > bpd["id"]["id_test"] + 0.5:
            lines.append(
                f"The WAIC members are trained from scratch for "
                f"{results['config']['ensemble']['steps']} steps and stay far from "
                f"the fine-tuned ID model (test bits/dim up to {worst:.3f} vs "
                f"{bpd['id']['id_test']:.3f}); WAIC gives {auc['waic'][ood]:.3f} on "
                f"{ood} against {auc['likelihood'][ood]:.3f} for the raw likelihood."
            )
    groups = results.get("groups", {})
    first = next(iter(groups.values()), {}).get("auroc", {})
    full, tc = first.get("klods_image_k2", {}), first.get("klods_image_k2_tc", {})
    if ood in full and ood in tc and tc[ood]["mean"] < 0.5 < full[ood]["mean"]:
        lines.append(
            f"KLODS-R's total-correlation part alone ranks `{ood}` groups as *less* "
            f"correlated than the ID groups ({tc[ood]['mean']:.3f} at M = "
            f"{next(iter(groups))}): the separation comes from the dimension-wise "
            "part (means and variances of the latents off N(0, 1)), not from the "
            "extra dependence that v1 of the paper's abstract points to."
        )
    for size, g in groups.items():
        inverted = {
            o: v["mean"]
            for o, v in g["auroc"].get("klods_image_k2", {}).items()
            if v["mean"] < 0.4
        }
        if inverted:
            cells = ", ".join(f"`{o}` {v:.3f}" for o, v in inverted.items())
            flips = all("flip" in o for o in inverted)
            lines.append(
                f"KLODS-R in groups of {size} finds these sets *closer* to N(0, I) "
                f"than the ID test set: {cells}. "
                + (
                    "Pooling patches over all positions forgets where a patch "
                    "sits, which makes the statistic nearly blind to a global flip; "
                    if flips
                    else ""
                )
                + "why it falls below 0.5 was not established."
            )
            break
    return " ".join(lines)


def glow_section(results: dict) -> str:
    m = results["metrics"]
    t = results["training"]
    bpd = results["bpd"]
    lik = m["likelihood"]["mnist_5k"]["auroc"]
    paradox = (
        "The likelihood paradox is reproduced: the raw likelihood gives AUROC "
        f"{lik:.3f} on FMNIST→MNIST-5k, far below 0.5 (MNIST digits get *higher* "
        "likelihood than the Fashion-MNIST test set)."
        if lik < 0.5
        else f"The raw likelihood AUROC on FMNIST→MNIST-5k is {lik:.3f}: the paradox "
        "(AUROC < 0.5) did not show with this model."
    )
    minutes = sum(s["train_seconds"] for s in t.values()) / 60
    model = results["config"]["model"]
    n_in = m["likelihood"]["mnist_5k"]["n_in"]
    stages = _stage_list(t)
    return f"""## Glow on Fashion-MNIST (`{results["name"]}`)

Config `experiments/configs/glow_fmnist.py`, command `{results["command"]}`. Glow
L={model["num_scales"]}, K={model["steps_per_scale"]}, hidden {model["hidden"]},
{model["coupling"]} coupling, {model["prior"]} prior; Fashion-MNIST resized to 32×32.
Training on the 2-core CPU: {stages}, {minutes:.0f} minutes in all.
**Test bits/dim of Fashion-MNIST: {bpd["id"]["id_test"]:.3f}** (ID model),
{bpd["general"]["id_test"]:.3f} under the general model. The general model is
trained on `general_photos` (60,000 grey crops of the 17 photographs bundled with
scikit-image and scikit-learn plus 200 LFW faces; no digits, clothes or silhouettes):
80 Million Tiny Images, the paper's general set, is withdrawn and not available offline.
{_baseline_models_sentence(results)}

### Point-wise

AUROC, OOD positive, anomaly score of each detector (ID test: {n_in} images; per-set
sizes, AUPR and FPR95 with bootstrap intervals in `runs/{results["name"]}/report.md`):

{auroc_table(results)}

{paradox}

Next to the references of `shared/specs/methods.md` (none of them is this exact
model; Schirrmeister et al.'s own AUROC tables are not confirmed there, so they are
not quoted):

{anchors_table(results)}

{observations(results)}

{baseline_observations(results)}

Detectors:

{chr(10).join(f"- `{k}`: {v}" for k, v in results["detectors"].items())}

{group_section(results)}

Why ours differ from the references in general: our flow is a 2-core-CPU model
(about {t["id"]["steps"]} fine-tuning steps, far from the paper's 250 epochs of a
44 M-parameter Glow), the general set is a small photo collection instead of 80M Tiny
Images, MNIST is the 5,000-image subset, and the references use other model families.
The likelihood ratios are trained here with the paper's recipe (fine-tuning from the
general model; outlier loss λ=6000, T=1000).
Full per-run report with ROC curves and histograms: `runs/{results["name"]}/report.md`
(written by `make run`).
"""


def _stage_list(training: dict) -> str:
    """The stage list, e.g. "general 3000 steps (22 min)", naming the stages restored
    from elsewhere (their minutes are those of the run that trained them)."""
    parts = []
    for stage, summary in training.items():
        minutes = summary["train_seconds"] / 60
        text = f"{stage} {summary['steps']} steps ({minutes:.0f} min"
        if "restored_from" in summary:
            text += f", restored from `{_relative(summary['restored_from'])}`"
        parts.append(text + ")")
    return ", ".join(parts)


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def _baseline_models_sentence(results: dict, id_name: str = "Fashion-MNIST") -> str:
    bpd, cfg = results["bpd"], results["config"]
    parts = []
    if "background" in bpd:
        bc = cfg["background"]
        parts.append(
            f"Ren et al.'s background Glow (from scratch on ID images mutated at "
            f"μ = {bc['mutation_rate']}, L2 λ = {bc['l2_weight']}, {bc['steps']} "
            f"steps) gives the clean {id_name} test set "
            f"{bpd['background']['id_test']:.3f} bits/dim."
        )
    members = [k for k in bpd if k.startswith("ensemble_")]
    if members:
        values = [bpd[k]["id_test"] for k in members]
        parts.append(
            f"The WAIC ensemble has {len(members)} Glows trained from scratch "
            f"({cfg['ensemble']['steps']} steps each, one seed each): test "
            f"bits/dim {min(values):.3f}–{max(values):.3f}."
        )
    return " ".join(parts)


# MNIST → Fashion-MNIST likelihood AUROCs of other models (methods.md 2.12).
MNIST_ANCHORS = {
    "likelihood": [
        ("0.996", "diffusion VP-SDE, Kamkari et al. 2024 (2.12)"),
        ("0.999", "RQ-NSF flow, dgm_geometry guide re-run (2.12)"),
    ],
    "complexity_jpeg2000": [
        (
            "0.183",
            "JPEG 2000 input complexity on a vanilla VAE, Vacant Holes Table 5 (4.7)",
        ),
    ],
    "typicality": [
        ("0.999", "typicality M = 1 on a vanilla VAE, Vacant Holes Table 5 (4.7)"),
    ],
}


def glow_mnist_section(results: dict) -> str:
    """The reverse pair: Glows trained on MNIST-5k, Fashion-MNIST as OOD."""
    m, t, bpd = results["metrics"], results["training"], results["bpd"]
    stages = _stage_list(t)
    rows = []
    for detector, per_set in m.items():
        r = per_set["fashion_mnist"]
        rows.append(
            f"| {detector} | {r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, "
            f"{r['auroc_ci_high']:.3f}] | {r['aupr_out']:.3f} | {r['fpr95']:.3f} |"
        )
    anchor_rows, notes = [], []
    for detector, refs in MNIST_ANCHORS.items():
        if detector not in m:
            continue
        ours = m[detector]["fashion_mnist"]["auroc"]
        anchor_rows += [f"| {detector} | {ours:.3f} | {v} | {src} |" for v, src in refs]
        notes.append(_differs(detector, "MNIST-5k→FMNIST", ours, refs))
    n = m["likelihood"]["fashion_mnist"]
    return f"""## Glow on MNIST-5k → Fashion-MNIST (`{results["name"]}`)

`{results["command"]}` (config `experiments/configs/glow_fmnist.py:mnist_5k`): the same
Glow, in-distribution = the 4,000 MNIST-5k training digits (400 held out for
validation), OOD = Fashion-MNIST test images. The general model is the Fashion-MNIST
setting's (it does not see ID data), restored from that run; the others are trained
for this setting. Stages: {stages}.
Test bits/dim of MNIST-5k {bpd["id"]["id_test"]:.3f} (ID model), of Fashion-MNIST
{bpd["id"]["ood/fashion_mnist"]:.3f}.
{_baseline_models_sentence(results, "MNIST-5k")}

### Point-wise

OOD positive; ID test {n["n_in"]} images, OOD {n["n_out"]}; AUROC with 95 % bootstrap
interval, AUPR-Out, FPR at 95 % TPR:

| detector | AUROC | AUPR-Out | FPR95 |
|---|---|---|---|
{chr(10).join(rows)}

| detector | ours | reference | source |
|---|---|---|---|
{chr(10).join(anchor_rows)}

{chr(10).join(x for x in notes if x) or "Within 0.05 of the references."}

{baseline_observations(results, "fashion_mnist")}

{group_section(results, "fashion_mnist", "MNIST-5k→FMNIST", anchors={})}

No group reference numbers exist for this direction in `shared/specs/methods.md`
(Jiang et al.'s table has Fashion-MNIST in-distribution only).
"""


def group_table(results: dict, size: str) -> str:
    groups = results["groups"][size]["auroc"]
    sets = [x for x in SETS if x in next(iter(groups.values()))]
    lines = [
        "| detector | " + " | ".join(sets) + " |",
        "|---" * (len(sets) + 1) + "|",
    ]
    for detector, per_set in groups.items():
        cells = [f"{per_set[x]['mean']:.3f} ± {per_set[x]['std']:.3f}" for x in sets]
        lines.append(f"| {detector} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def group_section(
    results: dict, ood: str = "mnist_5k", pair: str = "FMNIST→MNIST-5k", anchors=None
) -> str:
    """The group tables (sizes 5 and 10) with their anchors and sentences; ``ood`` is
    the set of the named pair, ``anchors`` as ``GROUP_ANCHORS``."""
    anchors = GROUP_ANCHORS if anchors is None else anchors
    groups = results["groups"]
    sc = results["config"]["scoring"]
    first = next(iter(next(iter(groups.values()))["auroc"].values()))[ood]
    parts = [
        "### Groups (typicality and KLODS-R)",
        "",
        f"Group protocol (methods.md 3.8): each set shuffled with a fixed seed into "
        f"groups of M, the last incomplete group dropped; AUROC of ID-test groups vs "
        f"OOD groups; mean ± std over {len(sc['group_seeds'])} shuffles (seeds "
        f"{list(sc['group_seeds'])}). KLODS-R variants (a reconstruction, methods.md "
        f"3.5): `klods_image_k2` = 2×2 patches of the latents in image layout (m = 4), "
        f"`klods_scale0_k2` = 2×2×C patches of the finest scale's latents (m = 8); "
        f"`_tc` / `_dw` = the total-correlation / dimension-wise parts.",
    ]
    for size in groups:
        n_in = groups[size]["auroc"]["typicality"][ood]["groups_in"]
        n_out = groups[size]["auroc"]["typicality"][ood]["groups_out"]
        parts += [
            "",
            f"**Groups of {size}** ({n_in} ID-test groups; {n_out} groups of `{ood}`):",
            "",
            group_table(results, size),
            "",
        ]
        for detector, (value, source) in anchors.get(size, {}).items():
            ours = groups[size]["auroc"][detector][ood]["mean"]
            line = f"- {pair}, `{detector}`: ours {ours:.3f} vs {value} ({source})."
            if abs(ours - float(value)) > 0.05:
                line += f" Likely why: {GROUP_WHY[detector]}."
            parts.append(line)
        if size == "5" and ood == "mnist_5k":
            parts.append(_klods_goal(groups[size]["auroc"], sc["klods_variants"][0]))
    test = {size: g["typicality_test"] for size, g in groups.items()}
    flagged = ", ".join(
        f"M = {m}: {t['flagged']['id_test']:.3f} of ID-test groups and "
        f"{t['flagged'][ood]:.3f} of `{ood}` groups"
        for m, t in test.items()
    )
    parts += [
        "",
        f"The typicality *test* (bootstrap threshold, α = {sc['alpha']}, "
        f"{sc['bootstrap_resamples']} resampled ID-validation groups) flags {flagged}. "
        f"First shuffle; {first['groups_in']} ID groups at M = {next(iter(groups))}.",
        "",
        f"Plot: `runs/{results['name']}/groups.png` (AUROC against M, M = 1 being the "
        "point-wise score).",
    ]
    return "\n".join(parts)


def _klods_goal(auroc: dict, main_variant: str) -> str:
    """The issue's goal judged on the declared main variant (the config's first,
    full KL); the best ablation is named too, but chosen after seeing the test."""
    layout, k = main_variant.split(":")
    main = f"klods_{layout}_k{k}"
    result = auroc[main]["mnist_5k"]
    ours, worst = result["mean"], min(result["per_seed"])
    met = "met" if ours >= KLODS_GOAL else "**not met**"
    if ours >= KLODS_GOAL > worst:
        met = "met on the mean, narrowly,"
    ablations = {
        d: v["mnist_5k"]["mean"]
        for d, v in auroc.items()
        if d.startswith("klods") and d != main
    }
    best = max(ablations, key=ablations.get)
    return (
        f"- Goal AUROC ≥ {KLODS_GOAL} for KLODS at M = 5 on FMNIST→MNIST-5k: {met} "
        f"by the main variant `{main}` ({ours:.4f} ± {result['std']:.4f}; lowest "
        f"of the {len(result['per_seed'])} shuffles {worst:.4f}). Best of the other "
        "variants and "
        f"parts: `{best}` {ablations[best]:.3f} (picked after seeing the test sets, "
        "so not a claim)."
    )


def headline(glow: dict, vae: dict | None, mnist: dict | None = None) -> str:
    """The README's table: a few detectors of each family, every OOD set, and the
    reverse pair MNIST-5k → Fashion-MNIST when it was run."""
    rows = [
        ("likelihood", "Glow −log p(x)"),
        ("final_scale", "Glow final scale (Schirrmeister et al.)"),
        ("llr_outlier", "ratio to general model + outlier loss"),
        ("ren_llr", "background ratio (Ren et al.)"),
        ("waic", "WAIC, Glow ensemble"),
        ("complexity_png", "input complexity, PNG (Serrà et al.)"),
        ("typicality", "typicality, M = 1"),
        ("klods_image_k2", "KLODS-R, one image"),
    ]
    m = glow["metrics"]
    sets = [x for x in SETS if x in next(iter(m.values()))]
    columns = sets + (["MNIST-5k → fashion_mnist"] if mnist is not None else [])
    lines = [
        "| detector | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for detector, label in rows:
        if detector not in m:
            continue
        cells = [f"{m[detector][x]['auroc']:.3f}" for x in sets]
        if mnist is not None:
            reverse = mnist["metrics"].get(detector)
            cells.append(f"{reverse['fashion_mnist']['auroc']:.3f}" if reverse else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for detector, label in (
        ("typicality", "typicality"),
        ("klods_image_k2", "KLODS-R"),
    ):
        g = glow["groups"]["5"]["auroc"][detector]
        cells = [f"{g[x]['mean']:.3f}" for x in sets]
        if mnist is not None:
            reverse = mnist["groups"]["5"]["auroc"][detector]["fashion_mnist"]
            cells.append(f"{reverse['mean']:.3f}")
        lines.append(f"| {label}, groups of 5 | " + " | ".join(cells) + " |")
    text = (
        "Fashion-MNIST vs OOD sets and MNIST-5k vs Fashion-MNIST, AUROC (OOD "
        "positive; Glow `glow_fmnist`, test "
        f"bits/dim {glow['bpd']['id']['id_test']:.3f}; generated from "
        "`runs/*/results.json`, every detector and the references in "
        "`experiments/README.md`):\n\n" + "\n".join(lines)
    )
    if vae is not None:
        pair = vae["pairs"]
        cells = [
            f"{p.replace('→', ' → ')}: {pair[p]['vanilla']['hole']['auroc']:.3f}"
            for p in pair
        ]
        text += (
            "\n\nVAE hole indicator (vanilla conv VAE), AUROC: "
            + "; ".join(cells)
            + "."
        )
    return text


def lid_section(lid: dict) -> str:
    counts = lid["counts"]
    rows = [
        f"| FMNIST→{pair} | {r['likelihood']:.3f} | {r['envelope_reported']:.3f} "
        f"| {r['rank_and']:.3f} | {r['lid_only']:.3f} |"
        for pair, r in lid["pairs"].items()
    ]
    mean_lid = ", ".join(f"{k} {v:.0f}" for k, v in lid["mean_lid"].items())
    return f"""## LID + likelihood dual threshold on the same Glow (preliminary)

`python -m experiments.lid_pipeline --workdir runs/glow_fmnist` on the `id` model:
threshold LID from the exact decoder Jacobian spectrum (1024 JVPs per image), log τ
calibrated by bisection to {lid["log_tau"]:.2f} so that the mean LID of
{counts["calibration"]} training images equals the JAX lPCA target
{lid["lpca_target"]:.1f} (alpha 1e-3, 1000 neighbours among 10,000 training images,
32×32 images). **Small samples**: {counts["id_test"]} ID test images and
{counts["ood/mnist_5k"]} per OOD set, {counts["validation"]} validation images for
the rank-space CDFs — intervals are wide; larger counts are a flag away.

| pair | likelihood | dual: envelope (authors) | dual: rank-AND score | LID only |
|---|---|---|---|---|
{chr(10).join(rows)}

"Envelope" is the authors' oracle: the upper envelope of (FPR, TPR) over all threshold
pairs, then the max with the likelihood AUROC; it is not the AUROC of one score.
"Rank-AND" is a single score (jaxood proposal): -min(F_L(log p), F_LID(LID)) with F
the empirical CDFs of ID validation data. References (methods.md 2.12): RQ-NSF flow
re-run with log τ = -3, likelihood 0.291 → dual 0.950; diffusion (normal bundle)
0.240 → 0.846. Mean LID: {mean_lid}.
{_lidl_sentence(lid)}
Plot: `runs/glow_fmnist/lid/lid.png` (LID against log p per set, threshold LID
against log τ, LIDL against δ).
"""


def _lidl_sentence(lid: dict) -> str:
    if "lidl" not in lid:
        return ""
    lidl = lid["lidl"]
    deltas = lidl["deltas"]
    at = min(range(len(deltas)), key=lambda i: abs(deltas[i] + 2.0))
    values = ", ".join(
        f"{k.removeprefix('ood/')} {v[at]:.0f}" for k, v in lidl["mean_curves"].items()
    )
    return (
        f"Smooth LID (LIDL, 50 scales δ ∈ [{deltas[0]:.0f}, {deltas[-1]:.0f}] from one "
        f"SVD per image, {lidl['count']} images per set): mean at δ = "
        f"{deltas[at]:.2f}: {values}."
    )


# Vacant Holes supplement Table 5 (methods.md 4.7), AUROC / AUPR / FPR80 in %:
# (pair, detector) -> (cell, model of the paper).
VAE_ANCHORS = {
    ("fashion_mnist→mnist_5k", "iwae"): ("45.13 / 43.75 / 75.60", "vanilla VAE"),
    ("fashion_mnist→mnist_5k", "typicality"): ("45.16 / 43.76 / 75.60", "vanilla VAE"),
    ("fashion_mnist→mnist_5k", "hole"): ("87.37 / 88.86 / 19.25", "S-VAE (presumably)"),
    ("mnist_5k→fashion_mnist", "iwae"): ("99.85 / 99.86 / 0.00", "vanilla VAE"),
    ("mnist_5k→fashion_mnist", "typicality"): ("99.86 / 99.87 / 0.00", "vanilla VAE"),
    ("mnist_5k→fashion_mnist", "hole"): ("94.54 / 99.01 / 5.60", "S-VAE (presumably)"),
}
# Table 6 (hole indicator, presumably AUROC %, dataset not named), s = 1, 3, ..., 15.
VAE_SCALING_ANCHORS = {
    "vanilla": (100.0, 100.0, 100.0, 99.69, 53.40, 0.00, 0.00, 0.03),
    "lipschitz": (100.0, 100.0, 100.0, 99.48, 99.36, 95.32, 99.48, 95.70),
}


def _cell(m: dict) -> str:
    return f"{100 * m['auroc']:.1f} / {100 * m['aupr']:.1f} / {100 * m['fpr80']:.1f}"


def vae_section(results: dict) -> str:
    detectors = ("iwae", "typicality", "hole", "regret")
    lines = [
        "| pair | model | IWAE −log p | typicality (M = 1) | hole indicator "
        "| likelihood regret |",
        "|---|---|---|---|---|---|",
    ]
    for pair, per_model in results["pairs"].items():
        for kind in ("vanilla", "lipschitz", "hyperspherical"):
            cells = [_cell(per_model[kind][d]) for d in detectors]
            lines.append(f"| {pair} | {kind} | " + " | ".join(cells) + " |")
    anchor_lines = [
        "| pair | detector | ours (vanilla / Lipschitz / hyperspherical), AUROC "
        "| paper (AUROC / AUPR / FPR80) | paper model |",
        "|---|---|---|---|---|",
    ]
    notes = []
    for (pair, detector), (cell, source) in VAE_ANCHORS.items():
        if pair not in results["pairs"]:
            continue
        ours = [results["pairs"][pair][k][detector]["auroc"] for k in
                ("vanilla", "lipschitz", "hyperspherical")]  # fmt: skip
        anchor_lines.append(
            f"| {pair} | {detector} | "
            + " / ".join(f"{100 * v:.1f}" for v in ours)
            + f" | {cell} | {source} |"
        )
        paper = float(cell.split(" / ")[0]) / 100
        best = max(ours)
        if abs(best - paper) > 0.05:
            notes.append(
                f"- {pair}, {detector}: our best AUROC {100 * best:.1f} vs the "
                f"paper's {100 * paper:.1f} ("
                + ("higher" if best > paper else "lower")
                + ")."
            )
    scaling = results.get("scaling", {})
    scales = sorted(next(iter(scaling.values())), key=float) if scaling else []
    scaling_lines = [
        "| model | " + " | ".join(f"×{s}" for s in scales) + " |",
        "|---" * (len(scales) + 1) + "|",
    ]
    for kind, curve in scaling.items():
        scaling_lines.append(
            f"| {kind} (ours) | "
            + " | ".join(f"{100 * curve[s]:.1f}" for s in scales)
            + " |"
        )
        if kind in VAE_SCALING_ANCHORS and len(scales) == 8:
            scaling_lines.append(
                f"| {kind} (paper, Table 6) | "
                + " | ".join(f"{v:.1f}" for v in VAE_SCALING_ANCHORS[kind])
                + " |"
            )
    training = ", ".join(
        f"{k} {v['steps']} steps ({v['train_seconds'] / 60:.1f} min, "
        f"val −ELBO {v['val_negative_elbo']:.1f} nats)"
        for k, v in results["training"].items()
    )
    reg = results["regret"]
    m_const = results["lipschitz_constant"]
    return f"""## VAEs (Vacant Holes): likelihood, typicality, hole indicator, regret

`{results["command"]}` (config `experiments/configs/vae_ood.py`). Models: vanilla
conv VAE (latent 10, methods.md 4.4), the same with an M = {m_const} Lipschitz encoder
(ℓ1-projected rows, GroupSort), hyperspherical MLP VAE (256 → 128, vMF on S³, uniform
prior); Bernoulli decoder on pixels / 255 for all (the paper does not say which). IWAE
and the hole indicator use the same N = {results["num_samples"]} posterior draws per
image; typicality's entropy Ĥ is the mean IWAE NLL of ID validation images; likelihood
regret: {reg["steps"]} Adam steps (lr 2e-4) on an encoder copy per image, IWAE with
{reg["num_samples"]} samples before and after, on the first {reg["images_per_set"]}
images of each set (the other scores: up to 1,000 per set). Training on the 2-core
CPU: {training}.

Cells: AUROC / AUPR (OOD positive) / FPR at 80 % TPR, in %:

{chr(10).join(lines)}

Next to the paper (supplement Table 5; its MNIST is full MNIST, ours MNIST-5k):

{chr(10).join(anchor_lines)}

{chr(10).join(notes) if notes else "All within 5 AUROC points of the paper."}

Why they differ: small models trained for ~1.5 epochs on 2 CPU cores, a Bernoulli
decoder, MNIST-5k instead of MNIST, the Lipschitz constant M and the hole indicator's N
are not given by the paper (methods.md 4.9), and the paper's hole-indicator row is not
labelled with a model.

Intensity-scaling ablation: hole-indicator AUROC of Fashion-MNIST test vs MNIST-5k
images whose pixels are multiplied by s (the paper does not name its dataset pair):

{chr(10).join(scaling_lines)}

{_scaling_sentence(scaling, scales)}

Plots: `runs/vae_ood/hole_histograms.png`, `runs/vae_ood/scaling.png`; report
`runs/vae_ood/report.md`.
"""


def _scaling_sentence(scaling: dict, scales: list[str]) -> str:
    if not {"vanilla", "lipschitz"} <= set(scaling) or not scales:
        return ""
    vanilla, lipschitz = scaling["vanilla"], scaling["lipschitz"]
    last = scales[-1]
    held = min(lipschitz[s] for s in scales)
    verdict = (
        "the paper's finding is reproduced (presumably the unbounded encoder sends "
        "bright outliers to far-away codes whose sampled reconstructions barely "
        "differ, while the compact one keeps them among the holes)"
        if vanilla[last] < held - 0.2
        else "the paper's contrast between the two encoders does not show here"
    )
    return (
        f"At ×{last} the vanilla VAE's hole indicator is at {100 * vanilla[last]:.1f} "
        f"AUROC, while the Lipschitz VAE never falls below {100 * held:.1f}: "
        f"{verdict}."
    )


# run directory (under --runs) -> title of its section, renderer.
SECTIONS = (
    ("glow_fmnist", "## Glow on Fashion-MNIST", glow_section),
    ("glow_mnist_5k", "## Glow on MNIST-5k → Fashion-MNIST", glow_mnist_section),
    ("glow_fmnist/lid", "## LID + likelihood dual threshold", lid_section),
    ("vae_ood", "## VAEs (Vacant Holes)", vae_section),
)
KEPT_NOTE = (
    "_Kept as last generated: `runs/{run}/results.json` was not there when these "
    "tables were regenerated; its numbers come from that run directory's last "
    "generation._"
)


def _previous_sections(text: str) -> dict[str, str]:
    """The sections of an earlier experiments/README.md, by the title prefix of
    :data:`SECTIONS` they start with."""
    chunks = ("\n" + text).split("\n## ")[1:]
    out = {}
    for chunk in chunks:
        chunk = "## " + chunk.rstrip("\n") + "\n"
        for _, title, _ in SECTIONS:
            if chunk.startswith(title):
                out[title] = chunk
    return out


def _kept(section: str, run: str) -> str:
    """A section whose run directory is absent here (another machine made it):
    kept verbatim, marked once so a reader knows its numbers are older."""
    note = KEPT_NOTE.format(run=run)
    if note in section:
        return section
    title, rest = section.split("\n", 1)
    return f"{title}\n\n{note}\n{rest}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.tables")
    parser.add_argument("--runs", default=str(ROOT / "runs"))
    parser.add_argument(
        "--experiments-readme", default=str(ROOT / "experiments" / "README.md")
    )
    parser.add_argument(
        "--readme", default=str(ROOT / "README.md"), help="gets the headline table"
    )
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    experiments_readme = Path(args.experiments_readme)
    previous = _previous_sections(
        experiments_readme.read_text() if experiments_readme.exists() else ""
    )
    sections, loaded = [], {}
    for run, title, render in SECTIONS:
        loaded[run] = _load(runs, run)
        if loaded[run] is not None:
            sections.append(render(loaded[run]))
        elif title in previous:
            print(f"runs/{run} is not here: keeping its section as last generated.")
            sections.append(_kept(previous[title], run))
    glow, mnist, vae_results = (
        loaded["glow_fmnist"],
        loaded["glow_mnist_5k"],
        loaded["vae_ood"],
    )
    body = "\n".join(sections) or "No finished runs yet: run `make run`.\n"
    experiments_readme.write_text(
        "# Experiments: paper vs ours\n\nGenerated by `python -m experiments.tables` "
        "from the run directories; do not edit by hand.\n\n" + body
    )
    readme = Path(args.readme)
    text = readme.read_text() if readme.exists() else f"{MARK_START}\n{MARK_END}\n"
    if MARK_START in text and glow is not None:
        head, rest = text.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        block = headline(glow, vae_results, mnist)
        readme.write_text(f"{head}{MARK_START}\n{block}\n{MARK_END}{tail}")
    print(f"wrote {experiments_readme}")


if __name__ == "__main__":
    main()
