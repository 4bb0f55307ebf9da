"""LID + likelihood dual threshold on a trained flow (Kamkari et al. 2024).

    python -m experiments.main --config experiments/configs/glow_fmnist.py \
        --workdir runs/glow_fmnist --mode lid

Uses the ID model of a flow config (restored or trained first); the counts are
``config.lid``. Per evaluation image: the decoder's Jacobian spectrum at z0 = f⁻¹(x)
(``jaxood.lid.flow_spectra``) and log p(x), saved once a minute under
``<workdir>/lid/`` so that an interrupted run resumes and a later run with larger
counts only computes the new images (``config.lid.rows_from`` starts a run from another
run directory's rows of the same model, or from a shipped copy of them:
:mod:`experiments.lid_rows`). τ is calibrated by bisection so that the mean
LID of the calibration images equals a JAX lPCA estimate on the training data; the
dual threshold is also reported at the fixed ``config.lid.fixed_log_taus`` and at
the log τ where the LID of the validation images varies most.
Writes ``lid/results.json`` and ``lid/lid.png``; the flow pipeline then writes
``lid/report.md`` and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configured, lid_rows
from jaxood import data, detectors, flows, io, lid, parallel, plots

BATCH = 4
SWEEP = np.linspace(-10.0, 5.0, 50)  # ℓ = log τ, as the reference's LID curves
DELTAS = np.linspace(-8.0, 2.0, 50)  # δ = log σ of the LIDL sweep (FastFlowLIDL)


def run(
    model,
    params,
    sets: dict[str, np.ndarray],
    out: Path,
    lc,
    setting: str,
    training: dict,
) -> dict:
    """Spectra, calibration and dual-threshold AUROCs of a trained flow on the
    first ``lc.num_*`` images of each set; writes ``out/results.json``, ``lid.png``.
    ``training`` is the model's stage summary (steps, validation bits/dim); its
    test bits/dim are measured here on every ID test image.
    """
    params = jax.tree.map(jnp.asarray, params)  # on device once, not per batch
    ood_sets = [name for name in sets if name.startswith("ood/")]
    out.mkdir(exist_ok=True)
    chosen, key = chosen_sets(sets, lc), rows_key(training)
    if lc.rows_from:
        source = configured.resolve(lc.rows_from)  # a run folder or shipped rows
        source = source / "lid" if (source / "lid").is_dir() else source
        if seeded := seed_rows(out, source, chosen, key):
            print(f"rows from {source}: {', '.join(seeded)}")

    def rows(fn, name, count=None, prefix=""):  # resumable: saved once a minute
        file, images = rows_file(out, name, prefix), chosen[name][:count]
        return io.resumable_rows(file, key, fn, images, BATCH, prefix + name)

    spectra, dropped = {}, {}
    for name in chosen:
        got = rows(
            lambda x: lid.flow_spectra_images(model, params, x, batch_size=BATCH), name
        )
        keep = ~np.isnan(got["s"]).any(axis=1)
        spectra[name] = {k: v[keep] for k, v in got.items()}
        dropped[name] = np.flatnonzero(~keep).tolist()
    with parallel.single_device():  # replicated batched eigvalsh can hang
        reference = data.to_model_space(sets["id_train"][: lc.lpca_reference])
        flat = reference.reshape(len(reference), -1)
        target = float(jnp.mean(lid.lpca(
            flat[: lc.num_calibration], flat, alpha=lc.lpca_alpha,
            n_neighbors=min(lc.lpca_neighbors, len(flat)))))  # fmt: skip
    log_tau, calibrated = lid.calibrate_log_tau(spectra["calibration"]["s"], target)
    log_p = {k: v["log_p"] for k, v in spectra.items()}

    def pairs_at(log_tau):  # threshold LID of every set, dual threshold per pair
        lids = {k: np.asarray(lid.threshold_lid(v["s"], log_tau), np.float64)
                for k, v in spectra.items()}  # fmt: skip
        options = {"envelope_ci_resamples": lc.envelope_resamples}
        return lids, _bare(detectors.dual_threshold_pairs(log_p, lids, ood_sets,
                                                          **options))  # fmt: skip

    lids, pairs = pairs_at(log_tau)
    counts = {  # threshold LID of every image at every log τ of the sweep
        k: np.asarray(lid.threshold_lid(v["s"], jnp.asarray(SWEEP)))
        for k, v in spectra.items()
    }
    sweep = detectors.lid_only_sweep(log_p, counts, SWEEP, ood_sets)
    test_log_p = io.cached_arrays(  # a rerun (more LID images) reuses it
        out / "id_test_log_p.npz",
        out / "id_test_log_p_key.json",
        {"model": key, "images": len(sets["id_test"])},  # not where it was restored
        lambda: flows.log_prob_images(model, params, sets["id_test"], desc="test"),
    )
    bpd = data.bits_per_dim(-test_log_p["total"], model.config.num_dims)
    lidl = {  # the images dropped above have no LIDL either
        n: np.delete(rows(lambda x: {"lidl": lid.flow_lidl_images(
            model, params, x, DELTAS, batch_size=BATCH)}, n, lc.num_lidl, "lidl_")[
            "lidl"], [i for i in dropped[n] if i < lc.num_lidl], axis=0)
        for n in ("id_test", *ood_sets)}  # fmt: skip
    results = {
        "setting": setting,
        "id_model": {"steps": training["steps"], "val_bpd": training["val_bpd"],
                     "test_bpd": float(np.mean(bpd)), "test_images": len(bpd)},
        "lpca_target": target,
        "log_tau": log_tau,
        "calibrated_mean_lid": calibrated,
        "counts": {k: len(v["log_p"]) for k, v in spectra.items()},
        # Images without a finite decoder Jacobian (no LID), by index in the set.
        "dropped": {k: v for k, v in dropped.items() if v},
        # Rows another run or a shipped (rounded) copy computed: lid_rows.
        "seeded_rows": _seeded(out),
        "mean_lid": {k: float(v.mean()) for k, v in lids.items()},
        "lid_curves": {k: np.mean(c, axis=0).tolist() for k, c in counts.items()},
        "pairs": pairs,
        # The same at the authors' fixed thresholds and at the widest-spread τ.
        "fixed_tau": {},
        "tau_sweep": sweep | {k: _bare(sweep[k]) for k in ("lid_only", "best")},
    }  # fmt: skip
    widest = lid.widest_log_tau(spectra["validation"]["s"], SWEEP)
    others = [(f"{f:g}", f) for f in map(float, lc.fixed_log_taus)]
    for label, fixed in [*others, (f"{widest:.2f} (widest ID LID)", widest)]:
        at_fixed, fixed_pairs = pairs_at(fixed)
        results["fixed_tau"][label] = {
            "mean_lid": {k: float(v.mean()) for k, v in at_fixed.items()},
            "pairs": fixed_pairs,
        }
    # The calibrated τ and the widest (the loop's last τ): one score over both.
    both = {k: [v, at_fixed[k]] for k, v in lids.items()}
    results["rank_and_both"] = {
        "log_taus": [float(log_tau), float(widest)],
        "pairs": _bare(detectors.rank_and_pairs(log_p, both, ood_sets)),
    }
    results["lidl"] = {
        "deltas": DELTAS.tolist(),
        "count": lc.num_lidl,
        "mean_curves": {n: c.mean(0).tolist() for n, c in lidl.items()},
    }
    io.write_json(out / "results.json", results)
    _plots(out, spectra, lids, results, ood_sets)
    return results


def chosen_sets(sets: dict[str, np.ndarray], lc) -> dict[str, np.ndarray]:
    """The images whose spectra a run computes: the first ``lc.num_*`` of each set."""
    chosen = {"calibration": sets["id_train"][: lc.num_calibration],
              "validation": sets["id_val"][: lc.num_validation]}  # fmt: skip
    evaluated = ("id_test", *(n for n in sets if n.startswith("ood/")))
    return chosen | {n: sets[n][: lc.num_eval] for n in evaluated}


def seed_rows(
    out: Path, source: Path, chosen: dict[str, np.ndarray], key: dict
) -> list[str]:
    """Copies into ``out`` the cached rows (spectra, LIDL) of ``source``, another
    run's ``lid/`` folder or a shipped copy of one (:mod:`experiments.lid_rows`),
    that this run would accept as its own and has fewer of: rows of the same ID
    model (``key``) whose inputs match the first of ``chosen`` (set name -> this
    run's images), up to this run's count. Rows the run holds already are kept
    (a shipped copy is rounded; they may not be). Runs that differ only in their OOD
    sets, or in how many images they take, then compute each spectrum once (hours
    for 5,000 images on 2 cores). What was copied from where is recorded in
    ``out/seeded.json`` (the run's results repeat it). Returns the names of the
    files extended; none, with a warning, when ``source`` holds no rows of these
    sets (a published command still runs on its own).
    """
    with_lidl = ("id_test", *(n for n in chosen if n.startswith("ood/")))
    wanted = [(n, "") for n in chosen] + [(n, "lidl_") for n in with_lidl]
    if not any(io.rows_key_file(rows_file(source, *w)).exists() for w in wanted):
        print(f"WARNING lid.rows_from: no LID cache of these sets in {source}; every "
              "row is computed")  # fmt: skip
        return []
    copied, record = [], _seeded(out)
    for name, prefix in wanted:
        file, target = rows_file(source, name, prefix), rows_file(out, name, prefix)
        if file.resolve() == target.resolve():
            continue  # rows_from names this run itself
        hashes = io.row_hashes(chosen[name])
        shipped = not file.exists()
        rows = (lid_rows.saved_rows if shipped else io.saved_rows)(file, key, hashes)
        own = io.saved_rows(target, key, hashes) or {}
        start, count = io.row_count(own), min(io.row_count(rows or {}), len(hashes))
        if count > start:
            io.write_rows(target, key, {k: np.concatenate(
                [own.get(k, v[:0])[:start], v[start:count]]) for k, v in rows.items()},
                hashes[:count])  # fmt: skip
            copied.append(target.stem)
            record.setdefault(target.stem, []).append(
                {"from": _shown(source), "rows": [start, count], "rounded": shipped}
            )
    if copied:
        io.write_json(out / "seeded.json", record)
    return copied


def _seeded(out: Path) -> dict:
    """What :func:`seed_rows` copied into ``out`` so far: file stem -> copies."""
    file = out / "seeded.json"
    return json.loads(file.read_text()) if file.exists() else {}


def _shown(path: Path) -> str:  # relative to the repository where it is inside
    path = path.resolve()
    return str(path.relative_to(configured.ROOT) if path.is_relative_to(configured.ROOT)
               else path)  # fmt: skip


def rows_key(training: dict) -> dict:  # what cached rows belong to: the ID model
    return {k: training[k] for k in ("steps", "selected_step", "val_bpd")}


def rows_file(out: Path, name: str, prefix: str = "") -> Path:  # prefix: "lidl_"
    return out / f"{prefix}{name.replace('/', '_')}.npz"


def _bare(per_ood: dict) -> dict:
    """The results name OOD sets without their ``ood/`` prefix."""
    return {name.removeprefix("ood/"): v for name, v in per_ood.items()}


def _plots(out: Path, spectra, lids, results, ood_sets) -> None:
    names, lidl = ("id_test", *ood_sets), results["lidl"]
    label = {n: n.removeprefix("ood/") for n in names}
    plots.line_panels([
        {"series": {label[n]: (spectra[n]["log_p"], lids[n]) for n in names},
         "scatter": True, "xlabel": "log p(x) [nats]",
         "ylabel": f"LID (log τ = {results['log_tau']:.2f})"},
        {"series": {label[n]: (SWEEP, results["lid_curves"][n]) for n in names},
         "vline": results["log_tau"], "xlabel": "log τ",
         "ylabel": "mean threshold LID"},
        {"series": {label[n]: (lidl["deltas"], c)
                    for n, c in lidl["mean_curves"].items()},
         "xlabel": "δ = log σ",
         "ylabel": f"mean LIDL ({lidl['count']} images per set)"},
        {"series": {o: (SWEEP, a) for o, a in results["tau_sweep"]["lid_only"].items()},
         "vline": results["log_tau"], "xlabel": "log τ", "ylim": plots.AUROC_LIMITS,
         "ylabel": "LID-only AUROC (τ chosen on the test pair)"},
    ], out / "lid.png", width=5, height=4)  # fmt: skip
