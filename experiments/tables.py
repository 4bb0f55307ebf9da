"""The generated blocks of both READMEs (top level, experiments/) and of run reports.

    python -m experiments.tables [--collect runs [--only NAME ...]]

Each block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
and holds numbers only: tables, intervals, the reference numbers ("anchors") with
their papers, and the command that produced them. They are rendered from the
committed results files ``experiments/results/NAME.json``; ``--collect RUNS`` first
copies the results of finished run directories there (``--only`` names the blocks
to take, so that one new run is published without recopying every other run
directory that happens to be under RUNS); the figures of ``experiments.figures``
are redrawn from the same files. Everything outside the blocks is written by hand.
``tests/test_tables.py`` fails when a block or a figure is stale.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path

from scipy import stats

from experiments import figures
from jaxood import io

ROOT = Path(__file__).resolve().parent.parent
RESULTS_REL = "experiments/results/"
RESULTS = ROOT / RESULTS_REL
MAIN = "python -m experiments.main --config experiments/configs/"


def published_commands(makefile: Path = ROOT / "Makefile") -> dict[str, tuple]:
    """Results name -> ``(results file under runs/, command)``, read from the lines
    of ``make reproduce`` (the one list of commands). The name is the run directory,
    plus ``_lid`` for ``--mode lid`` (whose results sit in its ``lid/`` folder); the
    command is the line without the Makefile's restore switches."""
    recipe = makefile.read_text().split("\nreproduce:")[1].split("\n\n")[0]
    sources = {}
    for line in [line.strip() for line in recipe.splitlines() if "$(MAIN)" in line]:
        command = re.sub(r" \$\((SHIPPED|FROM_RUNS)\)", "", line)
        command = command.replace("$(MAIN)/", MAIN)
        run, lid = re.search(r"--workdir runs/(\S+)", command)[1], "--mode lid" in line
        file = f"{run}/lid/results.json" if lid else f"{run}/results.json"
        sources[run + "_lid" * lid] = (file, command)
    return sources


SOURCES = published_commands()
REFERENCES = json.loads((ROOT / "experiments" / "references.json").read_text())
HEADLINE = {"likelihood": "Glow −log p(x)",
            "final_scale": "Glow final scale (Schirrmeister et al.)",
            "llr_outlier": "ratio to general model + outlier loss",
            "ren_llr": "background ratio (Ren et al.)", "waic": "WAIC, Glow ensemble",
            "complexity_png": "input complexity, PNG (Serrà et al.)",
            "typicality": "typicality, M = 1", "klods_image_k2": "KLODS-R, one image",
            "dose": "DoSE over the Glow statistics (KDE)"}  # fmt: skip


def md_table(header: str | list[str], rows: list[list]) -> str:
    """A markdown table; ``header`` as a list or ``"a | b | c"``; cells by ``str``."""
    header = header.split(" | ") if isinstance(header, str) else header
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def interval(m: dict) -> str:
    """``0.912 [0.900, 0.930]`` of a ``metrics.summary`` dict (or its AUROC alone)."""
    ends = [m[f"auroc_ci_{e}"] for e in ("low", "high") if f"auroc_ci_{e}" in m]
    return f"{m['auroc']:.3f}" + (" [{:.3f}, {:.3f}]".format(*ends) if ends else "")


def auroc_rows(per_detector: dict, sets) -> list[list]:
    """Rows ``label | AUROC [interval]`` per set, from ``{label: {set: summary}}``."""
    return [[d] + [interval(per[s]) for s in sets] for d, per in per_detector.items()]


def with_source(block: str, command: str, file: str) -> str:
    """``block`` under the command and the results file that produced it."""
    return f"Command: `{command}`; results: `{file}`.\n\n{block}"


def write_report(workdir: Path, name: str, family: str, results: dict, figures: dict,
                 command: str) -> str:  # fmt: skip
    """``workdir/report.md``: a title, the command, the ``family``'s block of the
    ``results`` and the ``figures`` ``{caption: png}``; returns the block for stdout."""
    title, render = REPORTS[family]
    block = render(results)
    images = "".join(f"\n\n![{caption}]({file})" for caption, file in figures.items())
    text = with_source(block, command, "results.json")
    (workdir / "report.md").write_text(f"# {name}: {title}\n\n{text}{images}\n")
    return f"(plots in {workdir / 'report.md'})\n\n{block}"


def _anchors(section: str, setting: str) -> list[str]:
    """The ``pair | method | AUROC | source`` table of a setting's anchors, if any."""
    rows = [a for a in REFERENCES[section] if a[0].split("→")[0] == setting]
    return [md_table("pair | method | AUROC | source", rows)] if rows else []


def _sizes(s: dict, oods) -> str:
    least = min(s["sizes"][f"ood/{o}"] for o in oods)
    return f"{s['sizes']['id_test']} ID test images, {least} or more per OOD set"


def flow_block(r: dict) -> str:
    """Training, point-wise and group AUROCs of a flow run, next to the anchors."""
    m, bpd, groups = r["metrics"], r["bpd"], r["groups"]
    sets = list(m["likelihood"])
    training = [[s, t["steps"], f"{t['train_seconds'] / 60:.0f}", f"{t['val_bpd']:.3f}",
                 f"{bpd[s]['id_test']:.3f}", f"`{t.get('restored_from', '-')}`"]
                for s, t in r["training"].items()]  # fmt: skip
    n, size = m["likelihood"][sets[0]], next(iter(groups))
    cell = "{mean:.3f} ± {std:.3f}"  # of the group AUROCs over the shuffles
    first = groups[size]["auroc"]["typicality"][sets[0]]

    def ours(d, o, k):  # M = 1: the point-wise AUROC
        return m[d][o]["auroc"] if k == "1" else groups[k]["auroc"][d][o]["mean"]

    anchors = [[d, o, k, f"{ours(d, o, k):.3f}", v, src]
               for d, o, k, v, src in REFERENCES["flow"]
               if o in sets and d in m and (k == "1" or k in groups)]  # fmt: skip
    flagged = [[k, f"{g['typicality_test']['threshold']:.1f}"]
               + [f"{v:.3f}" for v in g["typicality_test"]["flagged"].values()]
               for k, g in groups.items()]  # fmt: skip
    return "\n\n".join([
        md_table("stage | steps | minutes (2 CPU cores) | validation bits/dim | "
                 "ID test bits/dim | restored from", training),
        f"Point-wise AUROC, OOD positive, 95 % bootstrap interval ({n['n_in']} ID "
        f"test images, {n['n_out']} per OOD set):",
        md_table(["detector", *sets], auroc_rows(m, sets)),
        f"Groups of M: AUROC mean ± std over {len(first['per_seed'])} shuffles "
        f"({first['groups_in']} ID test groups at M = {size}):",
        md_table(["detector", "M", *sets],
                 [[d, k] + [cell.format(**g["auroc"][d][s]) for s in sets]
                  for d in groups[size]["auroc"] for k, g in groups.items()]),
        "Typicality test, fraction of groups flagged (first shuffle):",
        md_table(["M", "threshold (nats)", *groups[size]["typicality_test"]["flagged"]],
                 flagged),
        "References:",
        md_table("detector | OOD set | M | ours | reference | source", anchors),
        *_training_length(r.get("training_length", {}), sets),
    ])  # fmt: skip


# A swept stage: how its tables name it and the model kept final.
_SWEPT_STAGES = {"general": ("general", "ID"), "id": ("ID", "general"),
                 "id_outlier": ("outlier-loss", "general")}  # fmt: skip


def _training_length(sweep: dict, sets) -> list[str]:
    """The ratio's AUROC, in total and per scale, one model at fewer steps."""
    parts = []
    for stage, rows in sweep.items():
        this, other = _SWEPT_STAGES[stage]
        # The ratio swept: the key whose AUROCs also come per scale.
        first = next(iter(rows.values()))
        ratio = next(k[: -len("_per_scale")] for k in first if k.endswith("_per_scale"))
        keys = [(ratio, ratio)] + [("likelihood", "−log p")] * (stage == "id")
        # The outlier loss's term on the general set's held-out crops, where scored.
        term = ["held-out outlier term (nats)"] * ("val_outlier_term" in first)
        parts += [
            f"Length of training: the {this} model after each number of steps, the "
            f"{other} model final; AUROC of each detector:",
            md_table(["steps", "validation bits/dim", *term]
                     + [f"{label}: {s}" for _, label in keys for s in sets],
                     [[step, f"{row['val_bpd']:.3f}"]
                      + ([f"{row['val_outlier_term']:.3f}"] if term else [])
                      + [f"{row[k][s]:.3f}" for k, _ in keys for s in sets]
                      for step, row in rows.items()]),
            *([_term_correlation(rows, ratio, sets)] if term else []),
            f"The same ratio on one scale's log p alone (scale 0 first, the finest), "
            f"the {this} model after each number of steps:",
            md_table(["steps", "scale", *sets],
                     [[step, scale] + [f"{per[s]:.3f}" for s in sets]
                      for step, row in rows.items()
                      for scale, per in enumerate(row[f"{ratio}_per_scale"])]),
        ]  # fmt: skip
    return parts


def _term_correlation(rows: dict, ratio: str, sets) -> str:
    """Spearman's rank correlation of the held-out outlier term with each AUROC."""
    term = [row["val_outlier_term"] for row in rows.values()]
    aurocs = {s: [row[ratio][s] for row in rows.values()] for s in sets}
    rho = {s: stats.spearmanr(term, v)[0] for s, v in aurocs.items()
           if len(set(v)) > 1}  # fmt: skip
    return (
        f"Spearman's rank correlation of the held-out outlier term with the {ratio} "
        f"AUROC over these {len(rows)} states (sets whose AUROC never changes "
        "left out): " + "; ".join(f"{s} {v:.2f}" for s, v in rho.items()) + "."
    )


def lid_block(r: dict) -> str:
    """Dual-threshold AUROCs at the calibrated and the fixed τ, mean LID per set."""
    c, lidl, m = r["counts"], r["lidl"], r["id_model"]
    at = min(range(len(lidl["deltas"])), key=lambda i: abs(lidl["deltas"][i] + 2.0))
    keys = ("likelihood", "envelope_reported", "rank_and", "lid_only")
    setting = _setting(r)
    taus = {f"{r['log_tau']:.2f} (calibrated)": r["pairs"]}
    taus |= {t: v["pairs"] for t, v in r["fixed_tau"].items()}
    pairs = [[f"{setting}→{p}", t] + [_lid_cell(v, k) for k in keys]
             for t, per in taus.items() for p, v in per.items()]  # fmt: skip
    both = r["rank_and_both"]  # one score over log p and the LID at two τ
    pairs += [[f"{setting}→{p}", " and ".join(f"{t:.2f}" for t in both["log_taus"]),
               _lid_cell(r["pairs"][p], "likelihood"), "", interval(v), ""]
              for p, v in both["pairs"].items()]  # fmt: skip
    means = [[k.removeprefix("ood/"), c[k], f"{v:.0f}"]
             + [f"{f['mean_lid'][k]:.0f}" for f in r["fixed_tau"].values()]
             + [f"{lidl['mean_curves'][k][at]:.0f}" if k in lidl["mean_curves"] else ""]
             for k, v in r["mean_lid"].items()]  # fmt: skip
    fixed = [f"mean LID at log τ = {t}" for t in r["fixed_tau"]]
    return "\n\n".join([
        f"ID model: {m['steps']} steps, {m['val_bpd']:.3f} bits/dim on validation, "
        f"{m['test_bpd']:.3f} on {m['test_images']} test images.",
        f"log τ = {r['log_tau']:.2f}: the mean LID of {c['calibration']} training "
        f"images ({r['calibrated_mean_lid']:.1f}) meets the lPCA target "
        f"{r['lpca_target']:.1f}; rank-AND CDFs from {c['validation']} validation "
        f"images; LIDL from {lidl['count']} images per set. AUROC, OOD positive, "
        "95 % bootstrap interval:",
        md_table("pair | log τ | likelihood | dual: envelope | dual: rank-AND | "
                 "LID only", pairs),
        *_tau_sweep(r, setting),
        REFERENCES["lid"],
        md_table(["set", "images", "mean LID (calibrated τ)", *fixed,
                  f"mean LIDL at δ = {lidl['deltas'][at]:.2f}"], means),
    ])  # fmt: skip


def _tau_sweep(r: dict, setting: str) -> list[str]:
    """The highest LID-only AUROC over the log τ sweep."""
    taus = r["tau_sweep"]["log_taus"]
    rows = [[f"{setting}→{ood}", _lid_cell(r["pairs"][ood], "lid_only"),
             f"{b['lid_only']:.3f}", f"{b['log_tau']:.2f}", f"{b['envelope']:.3f}"]
            for ood, b in r["tau_sweep"]["best"].items()]  # fmt: skip
    return [
        f"LID only at each of {len(taus)} log τ from {taus[0]:g} to {taus[-1]:g}, τ "
        "chosen on the test pair (a bound, not a detector), and the dual envelope "
        "there:",
        md_table("pair | LID only, calibrated τ | LID only, highest | at log τ | "
                 "dual envelope there", rows),
    ]  # fmt: skip


def _lid_cell(pair: dict, key: str) -> str:
    """An AUROC of a LID pair with its interval (the envelope's sit beside it)."""
    ends = {f"auroc_ci_{e}": pair.get(f"{key}_ci_{e}") for e in ("low", "high")}
    return interval(pair[key] if isinstance(pair[key], dict) else
                    {"auroc": pair[key]} | ends)  # fmt: skip


def vae_block(r: dict) -> str:
    """Every pair × model × detector, the anchors, the scaling ablation."""
    kinds = [k for k in ("vanilla", "lipschitz", "hyperspherical") if k in r["models"]]
    pairs, detectors = r["pairs"], ("iwae", "typicality", "hole", "regret")
    table = [[p, k] + [" / ".join(f"{100 * per[k][d][x]:.1f}"
                                  for x in ("auroc", "aupr", "fpr80"))
                       for d in detectors]
             for p, per in pairs.items() for k in kinds]  # fmt: skip
    anchors = [[p, d, " / ".join(f"{100 * pairs[p][k][d]['auroc']:.1f}" for k in kinds),
                c, m] for p, d, c, m in REFERENCES["vae"] if p in pairs]  # fmt: skip
    scales = sorted(next(iter(r["scaling"].values())), key=float)
    paper = REFERENCES["vae_scaling"] if len(scales) == 8 else {}  # its 8 scales
    scaling = []
    for kind in sorted(r["scaling"], key=kinds.index):
        ours = [f"{100 * r['scaling'][kind][s]:.1f}" for s in scales]
        scaling += [[f"{kind} (ours)", *ours]] + [[f"{kind} (paper, Table 6)"] + [
            f"{v:.1f}" for v in paper.get(kind, [])]] * (kind in paper)  # fmt: skip
    training = [[k, v["steps"], f"{v['train_seconds'] / 60:.1f}",
                 f"{v['val_negative_elbo']:.1f}"]
                for k, v in r["training"].items()]  # fmt: skip
    reg = r["regret"]
    return "\n\n".join([
        md_table("model | steps | minutes (2 CPU cores) | validation −ELBO (nats)",
                 training),
        f"IWAE and hole indicator from the same N = {r['num_samples']} draws; "
        f"likelihood regret: {reg['steps']} steps, {reg['num_samples']} samples, first "
        f"{reg['images_per_set']} images per set. AUROC / AUPR / FPR at 80 % TPR, %, "
        "OOD positive:",
        md_table("pair | model | IWAE −log p | typicality (M = 1) | hole indicator"
                 " | likelihood regret", table),
        "References:",
        md_table(f"pair | detector | ours, AUROC % ({' / '.join(kinds)}) | paper "
                 "(AUROC / AUPR / FPR80) | paper model", anchors),
        "Hole-indicator AUROC (%), FMNIST test vs MNIST-5k pixels × s:",
        md_table(["model", *(f"×{s}" for s in scales)], scaling),
    ])  # fmt: skip


def dose_block(r: dict) -> str:
    """Per setting: DoSE per family and method next to the best published single
    detector of each column and the anchors; then the ablation of the combined
    detector (single-feature and drop-one AUROCs)."""
    parts = []
    for setting, s in r["settings"].items():
        method = next(iter(s["dose"]))
        oods = list(s["dose"][method]["all"])
        rows = auroc_rows({f"DoSE ({m}), {family} ({len(s['features'][family])} "
                           "features)": per for m, fams in s["dose"].items()
                           for family, per in fams.items()}, oods)  # fmt: skip
        single, by_feature = s["single"], s["ablation"]["single_feature"]
        rows += [
            ["best published single detector"]
            + [f"{interval(single[d][o])}: {d}" for o in oods
               for d in [max(single, key=lambda d: single[d][o]["auroc"])]],
            ["best single statistic (1-D DoSE)"]
            + [f"{by_feature[f][o]:.3f}: `{f}`" for o in oods
               for f in [max(by_feature, key=lambda f: by_feature[f][o])]],
        ]  # fmt: skip
        drop = s["ablation"]["drop_one"]
        worst = sorted(drop, key=lambda f: min(drop[f].values()))[:8]
        parts += [
            f"**{setting} in-distribution**: fit on {s['sizes']['fit']} ID training "
            f"images, {_sizes(s, oods)}. AUROC, OOD positive, 95 % bootstrap interval:",
            md_table(["detector", *oods], rows),
            *_anchors("dose", setting),
        ]
        for ood, quarters in s.get("flip_asymmetry", {}).items():
            parts += [
                f"DoSE ({method}, all families) on {ood} by the flipped image's "
                "vertical asymmetry, mean |x − flip(x)| / 255, in quarters:",
                md_table("asymmetry | images | AUROC",
                         [[f"{q['low']:.3f} – {q['high']:.3f}", q["n"],
                           f"{q['auroc']:.3f}"] for q in quarters]),
            ]  # fmt: skip
        parts += [
            f"Ablation of DoSE ({method}, all families): AUROC without one feature, "
            "the eight whose removal costs most (lowest column):",
            md_table(["without", *oods],
                     [[f"`{f}`"] + [f"{drop[f][o]:.3f}" for o in oods] for f in worst]),
        ]  # fmt: skip
    return "\n\n".join(parts)


def _at_t0(pairs: dict, t0: str, key: str) -> dict:
    return {ood: p["per_t0"][t0][key] for ood, p in pairs.items()}


def diffusion_block(r: dict) -> str:
    """Per setting: test bits/dim, then likelihood, FLIPD and the dual threshold
    (at the knee t0, and the envelope at every t0) next to the anchors."""
    parts = []
    for setting, s in r["settings"].items():
        b, lik, pairs = s["bits_per_dim"], s["likelihood"], s["pairs"]
        knee, oods, test = f"{s['t0_knee']:.4g}", list(pairs), b["test"]

        rows = {
            "likelihood −log p(x)": {o: p["likelihood"] for o, p in pairs.items()},
            f"FLIPD only, t0 = {knee} (knee)": _at_t0(pairs, knee, "flipd_only"),
            f"dual envelope, t0 = {knee}": {
                o: dict(zip(("auroc", "auroc_ci_low", "auroc_ci_high"),
                            (p["per_t0"][knee]["envelope_reported"], *p["envelope_ci"]),
                            strict=True)) for o, p in pairs.items()},
            f"dual single score (rank AND), t0 = {knee}":
                _at_t0(pairs, knee, "rank_and"),
        }  # fmt: skip
        for t in next(iter(pairs.values()))["per_t0"]:  # the knee's row has the CI
            rows.setdefault(f"dual envelope, t0 = {t}", {o: {"auroc": v} for o, v in
                            _at_t0(pairs, t, "envelope_reported").items()})  # fmt: skip
        t0s = [f"{t:.4g}" for t in s["t0s"]]
        parts += [
            f"**{setting} in-distribution** ({_sizes(s, oods)}). Test bits/dim "
            f"{test['mean']:.3f} ± {test['half_width']:.3f} ({test['n']} images, "
            f"tolerance {b['tolerance']:g}, {b['mean_ode_steps']:.0f} solver steps). "
            f"Likelihood of the detectors: log p_t at t = {lik['time']:g} (tolerance "
            f"{lik['tolerance']:g}, {lik['mean_ode_steps']:.0f} steps); FLIPD with "
            f"{s['flipd_probes']} Rademacher probes. AUROC, OOD positive, 95 % "
            "bootstrap interval:",
            md_table(["detector", *oods], auroc_rows(rows, oods)),
            *_anchors("diffusion", setting),
            f"Mean FLIPD per set at t0 = {', '.join(t0s)}:\n\n" + md_table(
                ["set", *t0s], [[k.removeprefix("ood/")] + [f"{v:.1f}" for v in m]
                                for k, m in s["mean_flipd"].items()]),
        ]  # fmt: skip
    return "\n\n".join(parts)


def headline(
    glow: dict, vae: dict | None, mnist: dict, dose: dict | None, lid: dict
) -> str:
    """The README's table: a few detectors of each family on every pair; below it
    the VAE hole indicator and the flows' dual threshold on every image (``lid``:
    :func:`every_image_runs`)."""
    m, g = glow["metrics"], glow["groups"]["5"]["auroc"]
    reverse, g_rev = mnist["metrics"], mnist["groups"]["5"]["auroc"]
    sets = list(m["likelihood"])
    rows = [[label] + [f"{m[d][s]['auroc']:.3f}" for s in sets]
            + [f"{reverse[d]['fashion_mnist']['auroc']:.3f}"]
            for d, label in HEADLINE.items() if d in m]  # fmt: skip
    rows += [[f"{HEADLINE[d].split(',')[0]}, groups of 5"]
             + [f"{g[d][s]['mean']:.3f}" for s in sets]
             + [f"{g_rev[d]['fashion_mnist']['mean']:.3f}"]
             for d in ("typicality", "klods_image_k2")]  # fmt: skip
    by = {k: v["dose"][next(iter(v["dose"]))]["all"]
          for k, v in (dose or {"settings": {}})["settings"].items()}  # fmt: skip
    if by and set(sets) <= set(by["fashion_mnist"]):
        rows.append(["DoSE over the Glows' and VAEs' statistics"]
                    + [f"{by['fashion_mnist'][s]['auroc']:.3f}" for s in sets]
                    + [f"{by['mnist_5k']['fashion_mnist']['auroc']:.3f}"])  # fmt: skip
    hole = [f"{p.replace('→', ' → ')} {v['vanilla']['hole']['auroc']:.3f}"
            for p, v in (vae or {"pairs": {}})["pairs"].items()]  # fmt: skip
    dual = [f"{FLOW_OF[n]} {_setting(res)} → {ood} {p['envelope_reported']:.3f} / "
            f"{figures.at_widest_tau(res)['pairs'][ood]['envelope_reported']:.3f}"
            for n, res in lid.items() for ood, p in res["pairs"].items()]  # fmt: skip
    return (
        "AUROC, OOD positive: the Fashion-MNIST Glow (test bits/dim "
        f"{glow['bpd']['id']['id_test']:.3f}) against each set, the MNIST-5k Glow "
        "against Fashion-MNIST; from `experiments/results/` (intervals, every detector "
        "and the references in `experiments/README.md`):\n\n"
        + md_table(["detector", *sets, "MNIST-5k → fashion_mnist"], rows)
        + f"\n\nVAE hole indicator (vanilla conv VAE): {'; '.join(hole)}." * bool(hole)
        + "\n\nLID + likelihood dual threshold (envelope at the calibrated / the "
        "widest-ID-LID τ) on every image, the `general_images` Glows and the spline "
        f"flows: {'; '.join(dual)}." * bool(dual)
    )


# The flow runs that differ only in their general set (and the ID model's length).
GENERAL_SETS = {"general_photos": ("glow_fmnist", "glow_mnist_5k"),
                "general_images": ("glow_fmnist_general_images",
                                   "glow_mnist_5k_general_images",
                                   "glow_mnist_5k_general_images_6000")}  # fmt: skip
COMPARED = ("likelihood", "final_scale", "llr", "llr_outlier")
PAIRED = ("mnist_5k", "animal_mnist", "fashion_mnist", "general_held_out")


def general_sets_block(r: dict) -> str:
    """The Fashion-MNIST pairs and the reverse pair with each general set side by
    side, from the published results ``{run name: results}``."""
    sources = ", ".join(f"`{RESULTS_REL}{n}.json`" for n in r)
    return f"From {sources} (commands in their blocks). " + general_sets_table(r)


def general_sets_table(r: dict) -> str:
    """The models' test bits/dim and the AUROCs of the ratio detectors of the runs
    ``{run name: results}`` of ``GENERAL_SETS``, one row per pair."""
    rows = []
    for general, runs in GENERAL_SETS.items():
        for run in filter(lambda n: n in r, runs):
            m, training, bpd = r[run]["metrics"], r[run]["training"], r[run]["bpd"]
            setting = "MNIST-5k" if "mnist_5k" in run else "FMNIST"
            for ood in [o for o in PAIRED if o in m["likelihood"]]:
                rows.append(
                    [general, f"{training['general']['steps']} / "
                     f"{training['id']['steps']}", f"{bpd['id']['id_test']:.3f}",
                     f"{setting}→{ood}"] + [interval(m[d][ood]) for d in COMPARED]
                )  # fmt: skip
    return (
        "AUROC, OOD positive, 95 % bootstrap interval:\n\n"
        + md_table(["general set", "steps: general / ID", "ID test bits/dim", "pair",
                    *COMPARED], rows)
    )  # fmt: skip


# The LID runs that together cover every image of each flow's pairs (a run may
# publish only some of its model's OOD sets).
EVERY_IMAGE = {
    "affine Glow": ("glow_fmnist_general_images_5000_lid",
                    "glow_fmnist_general_images_flips_lid",
                    "glow_fmnist_general_images_synthetic_5000_lid",
                    "glow_mnist_5k_general_images_6000_5000_lid"),
    "spline flow": ("glow_fmnist_spline_5000_lid",
                    "glow_fmnist_spline_animal_5000_lid",
                    "glow_fmnist_spline_flips_5000_lid",
                    "glow_fmnist_spline_synthetic_5000_lid",
                    "glow_mnist_5k_spline_5000_lid"),
}  # fmt: skip


FLOW_OF = {name: flow for flow, runs in EVERY_IMAGE.items() for name in runs}


def every_image_runs(r: dict) -> dict[str, dict]:
    """The published results ``r`` of the runs of ``EVERY_IMAGE``, in its order."""
    return {name: r[name] for name in FLOW_OF if name in r}


def every_image_block(lid: dict) -> str:
    """The dual threshold of both flows on every image, one row per pair, from the
    results ``lid`` of :func:`every_image_runs`."""
    rows = []
    for name, res in lid.items():
        setting, widest = _setting(res), figures.at_widest_tau(res)
        model = f"{FLOW_OF[name]} ({res['id_model']['test_bpd']:.3f} bits/dim)"
        for ood, pair in res["pairs"].items():
            best = res["tau_sweep"]["best"][ood]
            rows.append(
                [model, f"{setting}→{ood}",
                 f"{res['counts']['id_test']} / {res['counts']['ood/' + ood]}",
                 _lid_cell(pair, "likelihood"), _lid_cell(pair, "envelope_reported"),
                 _lid_cell(res["fixed_tau"]["-3"]["pairs"][ood], "envelope_reported"),
                 _lid_cell(widest["pairs"][ood], "envelope_reported"),
                 _lid_cell(pair, "rank_and"), _lid_cell(pair, "lid_only"),
                 f"{best['envelope']:.3f} ({best['log_tau']:.2f})"]
            )  # fmt: skip
    pending = [name for name in FLOW_OF if name not in lid]
    sources = ", ".join(f"`{RESULTS_REL}{n}.json`" for n in lid)
    return "\n\n".join([
        f"From {sources} (commands in their blocks below). AUROC, OOD positive, 95 % "
        "bootstrap interval; the envelope at the calibrated τ, at the authors' log τ "
        "= −3 and at the τ where the validation images' LID is widest; rank-AND and "
        "LID only at the calibrated τ; last, the envelope at the τ where LID alone "
        "is highest on the test pair itself (that log τ in brackets): a τ chosen on "
        "the test images, so an optimistic reading rather than a detector (where LID "
        "alone never beats chance, a τ at which the counts barely differ):",
        md_table("model | pair | images (ID / OOD) | likelihood | envelope, "
                 "calibrated τ | envelope, log τ = −3 | envelope, widest τ | "
                 "rank-AND | LID only | envelope, best LID-only τ", rows),
        *([f"Not run on every image yet: {', '.join(pending)}."] if pending else []),
    ])  # fmt: skip


def _setting(lid_results: dict) -> str:
    """The ID set of LID results as the tables name it (``FMNIST``, ``MNIST-5k``)."""
    return {"fashion_mnist": "FMNIST", "mnist_5k": "MNIST-5k"}[lid_results["setting"]]


# A pipeline (or --mode lid) -> its report's title and the block of its results.
REPORTS = {"flow": ("Glow OOD report", flow_block),
           "lid": ("LID dual threshold", lid_block),
           "vae": ("VAE OOD report", vae_block),
           "dose": ("density of states", dose_block),
           "diffusion": ("diffusion OOD report", diffusion_block)}  # fmt: skip


def render(name: str):
    """The block function of a results file, by its name."""
    family = "lid" if name.endswith("_lid") else name.split("_")[0]
    return REPORTS[family if family in REPORTS else "flow"][1]


def blocks(results_dir: Path = RESULTS) -> dict[str, dict[str, str]]:
    """README path -> block name -> text, for the committed results files only."""
    r = {n: json.loads((results_dir / f"{n}.json").read_text())
         for n in SOURCES if (results_dir / f"{n}.json").is_file()}  # fmt: skip
    experiments = {n: with_source(render(n)(r[n]), SOURCES[n][1],
                                  f"{RESULTS_REL}{n}.json") for n in r}  # fmt: skip
    out = {"experiments/README.md": experiments, "README.md": {}}
    compared = {n: r[n] for runs in GENERAL_SETS.values() for n in runs if n in r}
    if {"glow_fmnist", "glow_fmnist_general_images"} <= set(compared):
        experiments["general_sets"] = general_sets_block(compared)
    if lid := every_image_runs(r):
        experiments["lid_every_image"] = every_image_block(lid)
    if {"glow_fmnist", "glow_mnist_5k"} <= set(r):
        glow, vae, mnist = r["glow_fmnist"], r.get("vae_ood"), r["glow_mnist_5k"]
        out["README.md"]["headline"] = headline(
            glow, vae, mnist, r.get("dose_fmnist"), lid
        )
    return out


def replace_blocks(text: str, new: dict[str, str]) -> str:
    """``text`` with each generated block replaced; every block must be there."""
    for name, body in new.items():
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        if start not in text or end not in text:
            raise ValueError(f"No generated block {name!r} ({start} ... {end}).")
        head, rest = text.split(start, 1)
        text = f"{head}{start}\n{body}\n{end}{rest.split(end, 1)[1]}"
    return text


def collect(
    runs: Path, results_dir: Path = RESULTS, only: Sequence[str] | None = None
) -> list[str]:
    """Copies the results of finished runs under ``runs`` into ``results_dir``:
    every published run found there, or exactly the blocks named in ``only`` (each
    must be finished: asking for a run by name and silently getting nothing would
    leave the old block in place)."""
    if unknown := sorted(set(only or ()) - set(SOURCES)):
        raise ValueError(
            f"No published run {unknown}: a block name is the `--workdir runs/NAME` "
            f"of a line of the Makefile's reproduce recipe, plus `_lid` for "
            f"`--mode lid` ({sorted(SOURCES)})."
        )
    names = SOURCES if only is None else dict.fromkeys(only)
    found = [name for name in names if (runs / SOURCES[name][0]).is_file()]
    missing = [str(runs / SOURCES[n][0]) for n in names if n not in found]
    if only and missing:
        raise FileNotFoundError(f"Not finished (no results file): {', '.join(missing)}")
    for name in found:  # through a temporary file: never half-written
        results = json.loads((runs / SOURCES[name][0]).read_text())
        io.write_json(results_dir / f"{name}.json", results)
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.tables")
    parser.add_argument("--collect", help="runs directory to copy results from")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="collect these runs only"
    )
    args = parser.parse_args(argv)
    if args.only and not args.collect:
        parser.error("--only needs --collect")
    readme = (ROOT / "experiments" / "README.md").read_text()
    marked = [n for n in args.only or () if f"<!-- generated:{n} -->" in readme]
    if unmarked := [n for n in args.only or () if n in SOURCES and n not in marked]:
        parser.error(
            f"experiments/README.md has no block {unmarked}: add the "
            f"markers <!-- generated:NAME --> <!-- /generated:NAME --> first"
        )
    if args.collect:
        try:
            found = collect(Path(args.collect), only=args.only)
        except (ValueError, FileNotFoundError) as error:
            parser.error(str(error))
        print("collected:", found or "nothing")
    for path, new in blocks().items():
        text = (ROOT / path).read_text()
        for name in [n for n in new if f"<!-- generated:{n} -->" not in text]:
            print(f"{path} has no block {name}: add its markers to publish it.")
            del new[name]
        (ROOT / path).write_text(replace_blocks(text, new))
        print(f"wrote {ROOT / path}")
    for figure in figures.write():
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
