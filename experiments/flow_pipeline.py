"""The flow experiments (Schirrmeister et al. 2020 setting, plus the baselines).

Stages, each a sub-directory of the run directory (see ``jaxood.io``):

1. ``general``: a Glow trained from scratch on the general image set.
2. ``id``: fine-tuned from the general model on the in-distribution training set
   (ActNorms keep their values, as in the reference code).
3. ``id_outlier``: the same fine-tuning plus the outlier loss against the frozen
   general model; its last state is kept (its validation NLL ignores that loss).
4. ``background`` (Ren et al. 2019): from scratch on mutated ID images, L2 λ.
5. ``ensemble_0`` … ``ensemble_{K-1}`` (WAIC): from scratch on the ID images.

Stages 4 and 5 are trained when ``config.train_baseline_models``, otherwise used only
if finished here or restorable from ``config.checkpoints``.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from experiments import configured, lid_pipeline
from jaxood import checkpoint, data, detectors, flows, io, metrics, plots, train
from jaxood.data import sources
from jaxood.flows import losses

STAGES = ("general", "id", "id_outlier")
# Schirrmeister et al.'s detectors and DoSE; the baselines come from
# detectors.flow_baseline_scores. Definitions: docs/detectors.md.
DETECTORS = ("likelihood", "final_scale", "llr", "llr_outlier", "dose")
PLOTTED = ("likelihood", "final_scale", "llr", "ren_llr", "waic", "complexity_png")
GROUPED = ("typicality", "klods_image_k2")  # drawn against the group size


def build_model(config) -> flows.Glow:
    size, channels = config.data.image_size, config.data.channels
    return flows.Glow(
        flows.GlowConfig(image_shape=(size, size, channels), **config.model)
    )


def split_indices(config, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into the ID training split (stratified)."""
    dc = config.data
    return sources.stratified_split(labels, dc.val_size / len(labels), config.seed)


def load_sets(config) -> dict[str, np.ndarray]:
    """uint8 images at the model size: training/validation/test and every OOD set."""
    dc, seed, subset = config.data, config.seed, configured.subset
    images, labels = data.load(dc.id_dataset, "train", with_labels=True)
    train_idx, val_idx = split_indices(config, labels)
    general_val = data.load(dc.general_dataset, dc.general_test_split)
    sets = {"id_train": images[train_idx], "id_val": images[val_idx],
            "general_train": data.load(dc.general_dataset, "train"),
            "general_val": subset(general_val, dc.general_val_size, seed)}  # fmt: skip
    return _at_model_size(config, sets) | evaluation_sets(config)


def evaluation_sets(config, oods=None) -> dict[str, np.ndarray]:
    """uint8 images at the model size: ``id_test`` and ``ood/<name>`` for each entry
    of ``config.data.ood`` (or of those named in ``oods``); no general set needed."""
    dc = config.data
    entries = [e for e in dc.ood if oods is None or e.split(":")[0] in oods]
    test = data.load(dc.id_dataset, "test")
    sets = {"id_test": configured.subset(test, dc.max_eval, config.seed),
            **configured.load_sets(entries, dc.max_eval, config.seed)}  # fmt: skip
    return _at_model_size(config, sets)


def _at_model_size(config, sets: dict) -> dict:
    size = config.data.image_size
    return {
        k: v if v.shape[1] == size else data.resize(v, size) for k, v in sets.items()
    }


def fingerprint(config, stage: str) -> dict:
    """What determines a stage's trained params."""
    data_keys = ("id_dataset", "general_dataset", "image_size", "val_size")
    if stage == "general":  # independent of the ID data: shared across ID sets
        data_keys = ("general_dataset", "image_size", "general_val_size")
    out = {"stage": stage, "seed": config.seed, "model": config.model.to_dict(),
           "data": {k: config.data[k] for k in data_keys},
           "train": config.train.to_dict()}  # fmt: skip
    if config.id_from_scratch:  # absent otherwise: the shipped stages keep theirs
        out["id_from_scratch"] = True
    if stage == "general":
        out["general_steps"] = config.stages.general_steps
    elif stage in STAGES:  # the general model it starts from and its own settings
        out["stages"] = {k: v for k, v in config.stages.to_dict().items()
                         if k not in _NOT_IN_FINGERPRINT[stage]}  # fmt: skip
    elif stage == "background":
        out["background"] = config.background.to_dict()
    else:  # an ensemble member: the ensemble size does not change its params
        out["ensemble_steps"] = config.ensemble.steps
    return io.as_json(out)


# Stage settings that do not change a fine-tuned stage's params: snapshots along the
# way, and the other fine-tuned stage's settings (both start from the general model).
_SNAPSHOTS = ("snapshots", "outlier_snapshots")
_NOT_IN_FINGERPRINT = {
    "id": (*_SNAPSHOTS, "outlier_steps", "outlier_weight", "outlier_temperature"),
    "id_outlier": (*_SNAPSHOTS, "id_steps"),
}


def _stage_index(stage: str) -> int:
    """A distinct integer per stage, folded into the training key."""
    if stage in STAGES:
        return STAGES.index(stage)
    if stage == "background":
        return len(STAGES)
    return 100 + int(stage.removeprefix("ensemble_"))


def _validation(model, images):
    def evaluate(params):
        total = flows.log_prob_images(model, params, images, desc="validation")
        nll = float(-np.mean(total["total"]))
        return {
            "val_loss": nll,
            "val_bpd": float(data.bits_per_dim(nll, model.config.num_dims)),
        }

    return evaluate


def train_all(config, workdir: Path, sets, id_only: bool = False) -> dict:
    """Every stage in order (finished ones restored), or up to the ID model with
    ``id_only``; returns their params."""
    model, sc, tc, seed = build_model(config), config.stages, config.train, config.seed
    template = jax.eval_shape(lambda: model.random_params(jax.random.key(0)))

    def batches(images, batch_seed):
        return train.epoch_batches(images, tc.batch_size, batch_seed)

    def stage(
        name, init_fn, loss_fn, batch_fn, steps, select="best", weight_decay=None
    ):
        """Trains (resuming) or restores one stage; returns its params."""
        decay = tc.weight_decay if weight_decay is None else weight_decay
        optimizer = io.optimizer(tc.learning_rate, optimizer=tc.optimizer,
                                 warmup_steps=tc.warmup_steps, clip_norm=tc.clip_norm,
                                 weight_decay=decay)  # fmt: skip
        key = jax.random.fold_in(jax.random.key(seed), _stage_index(name))
        val_images = sets["general_val" if name == "general" else "id_val"]
        snapshots = {"general": sc.snapshots, "id": sc.snapshots,
                     "id_outlier": sc.outlier_snapshots}.get(name, ())  # fmt: skip
        return io.restore_or_fit(
            workdir / name, fingerprint(config, name), template, init_fn, loss_fn,
            optimizer, batch_fn, steps, key,
            _validation(model, val_images[: tc.eval_images]), select=select,
            snapshot_steps=snapshots, **configured.training(config))  # fmt: skip

    general_images, id_images = sets["general_train"], sets["id_train"]
    key, nll, params = jax.random.key(seed), losses.nll_loss(model), {}
    init = lambda x: lambda: flows.init(model, key, data.dequantize(key, x))  # noqa: E731
    if config.id_from_scratch:
        x = id_images[: tc.init_images]
        return {
            "id": stage("id", init(x), nll, batches(id_images, seed + 1), sc.id_steps)
        }
    params["general"] = general = stage(
        "general", init(general_images[: tc.init_images]), nll,
        batches(general_images, seed), sc.general_steps)  # fmt: skip
    params["id"] = stage(
        "id", lambda: general, nll, batches(id_images, seed + 1), sc.id_steps
    )
    if id_only:
        return params
    inliers, outliers = batches(id_images, seed + 2), batches(general_images, seed + 3)
    outlier_loss = losses.outlier_loss(
        model, weight=sc.outlier_weight, temperature=sc.outlier_temperature
    )
    params["id_outlier"] = stage(
        "id_outlier", lambda: general, outlier_loss,
        lambda step: (inliers(step), outliers(step), general), sc.outlier_steps,
        select="final")  # fmt: skip
    bc, ec = config.background, config.ensemble
    sources = configured.restore_sources(config)
    for name in ["background"] + [f"ensemble_{k}" for k in range(ec.size)]:
        here = io.is_available(workdir / name, fingerprint(config, name), sources)
        if not (config.train_baseline_models or here):
            continue
        index = _stage_index(name)
        init_key, data_key = jax.random.split(jax.random.key(seed + index))
        x, loss, steps, options = id_images[: tc.init_images], nll, ec.steps, {}
        if name == "background":  # its validation NLL (clean ID) is not its objective
            x = data.mutate(data_key, x, bc.mutation_rate)
            loss = losses.nll_loss(model, mutation_rate=bc.mutation_rate)
            steps, options = bc.steps, {"select": "final", "weight_decay": bc.l2_weight}
        member_init = lambda k=init_key, d=data_key, x=x: flows.init(  # noqa: E731
            model, k, data.dequantize(d, x))  # fmt: skip
        params[name] = stage(name, member_init, loss, batches(id_images, seed + index),
                             steps, **options)  # fmt: skip
    return params


def chain_scores(log_probs: dict, name: str) -> dict[str, np.ndarray]:
    """Anomaly scores of the detectors of Schirrmeister et al.'s chain on set
    ``name``: ``likelihood``, ``final_scale``, ``llr`` and ``llr_outlier``.

    Args:
        log_probs: ``{stage: {set: flows.log_prob_images output}}`` of the
            general, ID and outlier-loss models.
    """
    lp = {stage: log_probs[stage][name]["total"] for stage in STAGES}
    return {
        "likelihood": detectors.negative_log_likelihood(lp["id"]),
        "final_scale": detectors.final_scale(log_probs["id"][name]["per_scale"]),
        "llr": detectors.likelihood_ratio(lp["id"], lp["general"]),
        "llr_outlier": detectors.likelihood_ratio(lp["id_outlier"], lp["general"]),
    }


def mean_bits_per_dim(log_prob: dict, num_dims: int) -> float:
    """Mean bits/dim of a set from its ``flows.log_prob_images`` output."""
    return float(np.mean(data.bits_per_dim(-log_prob["total"], num_dims)))


def auroc_summary(config, scores_in, scores_out) -> dict:
    """The published metrics of one detector on one pair, with 95 % bootstrap
    intervals; a non-finite score counts as the most anomalous."""
    return metrics.summary(scores_in, scores_out, nonfinite="most_anomalous",
                           ci_resamples=200, seed=config.seed)  # fmt: skip


def _score_key(config, workdir: Path, stages) -> dict:
    """What the scores depend on: data, model, scoring and each stage's summary."""
    return io.as_json(
        {
            "seed": config.seed,
            "data": config.data.to_dict(),
            "model": config.model.to_dict(),
            "scoring": config.scoring.to_dict(),
            "stages": {s: io.stage_summary(workdir / s) for s in stages},
            "snapshots": {s: io.snapshots(workdir / s) for s in stages},
        }
    )


def density_of_states_scores(config, model, params, sets, log_probs, eval_sets):
    """DoSE over the ID and general Glows' statistics (the flow family), fit on
    ``config.scoring.dose_fit_images`` ID training images: ``{set: (N,)}``."""
    sc, num_dims = config.scoring, model.config.num_dims
    fit = configured.subset(sets["id_train"], sc.dose_fit_images, config.seed + 1)
    fit = detectors.flow_statistics(model, params["id"], fit, desc="DoSE fit set",
                                    general_params=params["general"],
                                    klods_ridge=sc.klods_ridge)  # fmt: skip
    evaluated = [detectors.flow_table(log_probs["id"][n], sets[n], num_dims,
                                      log_p_general=log_probs["general"][n]["total"],
                                      klods_ridge=sc.klods_ridge)
                 for n in eval_sets]  # fmt: skip
    fit, *evaluated = detectors.with_typicality(fit, *evaluated)
    dose = detectors.density_of_states("kde")
    state = dose.fit(fit)
    scores = [np.asarray(dose.score(state, table)) for table in evaluated]
    return dict(zip(eval_sets, scores, strict=True))


_HELD_OUT = "ood/general_held_out"  # scored with scoring.general_held_out
# Each stage whose length of training is swept: the other model of its ratio (kept
# final) and the detector that ratio is.
_SWEPT = {"general": ("id", "llr"), "id": ("general", "llr"),
          "id_outlier": ("general", "llr_outlier")}  # fmt: skip


def training_length(config, workdir: Path, model, sets, final) -> dict:
    """A likelihood ratio with one of its two models taken at each of that model's
    snapshots and the other final: ``llr`` along the general and the ID model's
    training, ``llr_outlier`` along the outlier-loss model's (if it kept snapshots).
    Per row: validation bits/dim of the snapshot, the AUROC per OOD set of the
    ratio, of the ratio of each scale's log p alone (``<ratio>_per_scale``: where
    along the multi-scale flow it separates), for ID snapshots the AUROC of
    ``likelihood`` and, for outlier-loss snapshots with the general set's held-out
    crops scored, the outlier loss's term on them (``val_outlier_term``, nats;
    :func:`jaxood.flows.losses.outlier_penalty`).

    Args:
        final: ``{stage: {set: log_prob_images output}}`` of the final general, ID
            and outlier-loss models on the evaluation sets.

    Returns:
        ``{stage: {step: {"val_bpd", ratio: {ood: auroc}, f"{ratio}_per_scale":
        [{ood: auroc} per scale][, "likelihood"][, "val_outlier_term"]}}}``, steps as
        strings, the last being the final model's.
    """
    eval_sets = list(final["id"])
    template = jax.eval_shape(lambda: model.random_params(jax.random.key(0)))
    swept = [s for s in _SWEPT if s != "id_outlier" or io.snapshots(workdir / s)]
    out = {}
    for stage in swept:
        other, name = _SWEPT[stage]
        validation = sets["general_val" if stage == "general" else "id_val"]
        evaluate = _validation(model, validation[: config.train.eval_images])
        rows = {}
        for step in [*io.snapshots(workdir / stage), "final"]:
            if step == "final":
                summary = io.stage_summary(workdir / stage)
                lp = {n: final[stage][n] for n in eval_sets}
                step, val_bpd = summary["steps"], summary["val_bpd"]
            else:
                folder = workdir / stage / "snapshots" / str(step)
                p = checkpoint.load_params(folder, template)
                desc = f"{stage} at step {step}"
                lp = {n: flows.log_prob_images(model, p, sets[n], desc=desc)
                      for n in eval_sets}  # fmt: skip
                val_bpd = evaluate(p)["val_bpd"]
            fitted, general = (lp, final[other]) if other == "general" else (
                final[other], lp)  # fmt: skip

            def ratio(part, fitted=fitted, general=general):  # of totals or a scale
                return {n: detectors.likelihood_ratio(part(fitted[n]), part(general[n]))
                        for n in eval_sets}  # fmt: skip

            scales = range(lp["id_test"]["per_scale"].shape[1])
            row = {"val_bpd": val_bpd, name: _aurocs(ratio(lambda v: v["total"])),
                   f"{name}_per_scale": [
                       _aurocs(ratio(lambda v, s=s: v["per_scale"][:, s]))
                       for s in scales]}  # fmt: skip
            if stage == "id":
                row["likelihood"] = _aurocs({n: -v["total"] for n, v in lp.items()})
            if stage == "id_outlier" and _HELD_OUT in eval_sets:
                # The outlier loss's term on held-out crops, in nats: with the ID
                # validation NLL (val_bpd) it is the training objective on held-out
                # data, which the validation bits/dim alone do not see.
                term = losses.outlier_penalty(
                    lp[_HELD_OUT]["total"], general[_HELD_OUT]["total"],
                    weight=config.stages.outlier_weight,
                    temperature=config.stages.outlier_temperature)  # fmt: skip
                row["val_outlier_term"] = float(term)
            rows[str(step)] = row
        out[stage] = rows
    return out


def _aurocs(scores: dict) -> dict:
    """``{ood: AUROC}`` of ``{"id_test": s, "ood/<name>": s}`` anomaly scores."""
    return {n.removeprefix("ood/"): metrics.auroc(scores["id_test"], v)
            for n, v in scores.items() if n != "id_test"}  # fmt: skip


def score_all(config, workdir: Path, sets, params) -> dict:
    """Every detector whose models are there on every evaluation set: writes
    ``scores.npz`` and ``results.json`` (reused while ``_score_key`` holds)."""
    key_file, results_file = workdir / "score_key.json", workdir / "results.json"
    score_key = _score_key(config, workdir, params)
    if io.is_cached(key_file, score_key, [results_file, workdir / "scores.npz"]):
        print(f"Scores of {workdir} are up to date: reusing them.")
        return json.loads(results_file.read_text())
    sc = config.scoring
    if sc.general_held_out:  # the crops that validated the general model
        sets = sets | {_HELD_OUT: sets["general_val"]}
    model = build_model(config)
    num_dims = model.config.num_dims
    eval_sets = ["id_test"] + [k for k in sets if k.startswith("ood/")]
    log_probs = {s: {n: flows.log_prob_images(model, p, sets[n], desc=f"{s} {n}",
                                              with_latents=s == "id")
                     for n in eval_sets}
                 for s, p in params.items()}  # fmt: skip
    id_log_p = lambda x: flows.log_prob_images(model, params["id"], x)["total"]  # noqa: E731
    fit = configured.subset(sets["id_train"], sc.typicality_train_images, config.seed)
    entropy, nll_val = float(-np.mean(id_log_p(fit))), -id_log_p(sets["id_val"])
    members = sorted(s for s in params if s.startswith("ensemble_"))
    klods = {"klods_variants": sc.klods_variants, "klods_ridge": sc.klods_ridge}

    def baselines(name):  # typicality, KLODS-R, complexity, Ren's ratio, WAIC
        lp = {stage: log_probs[stage][name]["total"] for stage in params}
        return detectors.flow_baseline_scores(
            log_probs["id"][name], sets[name], entropy, num_dims, codecs=sc.codecs,
            background_log_p=lp.get("background"),
            ensemble_log_p=[lp[m] for m in members], **klods,
        )  # fmt: skip

    dose = density_of_states_scores(config, model, params, sets, log_probs, eval_sets)
    scores = {n: chain_scores(log_probs, n) | {"dose": dose[n]} | baselines(n)
              for n in eval_sets}  # fmt: skip
    arrays = {
        f"{n}/{d}": np.asarray(v) for n, s in scores.items() for d, v in s.items()
    }
    for name in eval_sets:
        arrays[f"{name}/per_scale_id"] = log_probs["id"][name]["per_scale"]
        for stage in params:
            arrays[f"{name}/log_p_{stage}"] = log_probs[stage][name]["total"]
    io.save_arrays(workdir / "scores.npz", arrays)
    scored = list(scores["id_test"])
    oods = [n.removeprefix("ood/") for n in eval_sets[1:]]
    summary = lambda d, o: auroc_summary(  # noqa: E731
        config, arrays[f"id_test/{d}"], arrays[f"ood/{o}/{d}"])  # fmt: skip
    bpd = lambda lp: mean_bits_per_dim(lp, num_dims)  # noqa: E731
    results = {
        "name": config.name,
        "config": config.to_dict(),
        "detectors": scored,
        "bpd": {s: {n: bpd(v) for n, v in per.items()} for s, per in log_probs.items()},
        "training": {s: io.stage_summary(workdir / s) for s in params},
        "typicality_entropy_nats": entropy,
        "metrics": {d: {o: summary(d, o) for o in oods} for d in scored},
        "groups": detectors.flow_group_results(
            {n: log_probs["id"][n] for n in eval_sets}, entropy, nll_val,
            jax.random.key(config.seed), group_sizes=sc.group_sizes,
            seeds=sc.group_seeds, bootstrap_resamples=sc.bootstrap_resamples,
            alpha=sc.alpha, **klods),
    }  # fmt: skip
    if any(io.snapshots(workdir / s) for s in _SWEPT):
        results["training_length"] = training_length(
            config, workdir, model, sets, {s: log_probs[s] for s in _SWEPT}
        )
    io.write_json(results_file, results)
    io.mark_cached(key_file, score_key)
    return results


def train_models(config, workdir: Path):
    """Every stage (finished ones restored): ``(sets, {stage: params})``."""
    sets = load_sets(config)
    return sets, train_all(config, workdir, sets)


def score(config, workdir: Path, trained) -> dict:
    if config.id_from_scratch:
        raise SystemExit(
            f"{config.name} trains one ID model, for --mode lid; the detectors of "
            "--mode score need the general model (a config without 'spline')."
        )
    return score_all(config, workdir, *trained)


def lid(config, workdir: Path) -> tuple[dict, dict]:
    """LID + likelihood dual threshold of the ID model (trained or restored first);
    separate from ``all``: it takes about an hour on 2 cores."""
    sets = load_sets(config)
    params = train_all(config, workdir, sets, id_only=True)["id"]
    summary, out = io.stage_summary(workdir / "id"), workdir / "lid"
    results = lid_pipeline.run(build_model(config), params, sets, out, config.lid,
                               config.data.id_dataset, summary)  # fmt: skip
    return results, {"LID": "lid.png"}


def figures(config, workdir: Path, trained, results: dict) -> dict:
    """ROC curves, histograms, AUROC against the group size, training curves,
    samples and (with snapshots) the ratio against the length of training."""
    m, groups, axis = results["metrics"], results["groups"], plots.AUROC_LIMITS
    scores, sets = dict(np.load(workdir / "scores.npz")), list(m["likelihood"])
    plots.roc_and_histograms(
        {d: (scores[f"id_test/{d}"], {o: scores[f"ood/{o}/{d}"] for o in sets})
         for d in PLOTTED if d in m}, workdir / "scores.png")  # fmt: skip
    plots.training_curves({s: workdir / s for s in results["training"]}, "bpd",
                          workdir / "training.png")  # fmt: skip
    sizes = [1] + [int(size) for size in groups]  # 1: the point-wise AUROC

    def curve(d, o):  # mean ± std over the shuffles
        per = [g["auroc"][d][o] for g in groups.values()]
        return sizes, [m[d][o]["auroc"]] + [g["mean"] for g in per], [0] + [
            g["std"] for g in per]  # fmt: skip

    plots.line_panels(
        [{"title": d, "xlabel": "group size M", "ylabel": "AUROC", "ylim": axis,
          "series": {o: curve(d, o) for o in sets}} for d in GROUPED],
        workdir / "groups.png")  # fmt: skip
    model, rc, params = build_model(config), config.report, trained[1]
    for stage in ("id", "general"):
        x = flows.sample(model, params[stage], jax.random.key(config.seed),
                         rc.num_samples, rc.sample_temperature)  # fmt: skip
        title = f"{stage} model, temperature {rc.sample_temperature}"
        plots.image_grid(np.asarray(data.to_uint8(x)), workdir / f"samples_{stage}.png",
                         title)  # fmt: skip
    figures = {
        "ROC curves and score histograms": "scores.png",
        "AUROC against group size": "groups.png", "Training curves": "training.png",
        "ID samples": "samples_id.png", "General samples": "samples_general.png",
    }  # fmt: skip
    if "training_length" in results:  # a ratio's AUROC against each model's steps
        panels = []
        for stage, rows in results["training_length"].items():
            ratio, last = _SWEPT[stage][1], list(rows.values())[-1]
            steps = [int(s) for s in rows]
            panels.append({"xlabel": f"{stage} model: training steps",
                           "ylabel": f"{ratio} AUROC", "ylim": axis, "series": {
                               o: (steps, [r[ratio][o] for r in rows.values()])
                               for o in last[ratio]}})  # fmt: skip
        plots.line_panels(panels, workdir / "length.png")
        figures["Likelihood ratio against the length of training"] = "length.png"
    return figures
