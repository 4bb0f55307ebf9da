"""Density of states over the statistics of every model family (DoSE).

    python -m experiments.main --config experiments/configs/dose_fmnist.py \
        --workdir runs/dose_fmnist [--mode {train,score,report,all}]

Per in-distribution setting: restore (or train) the flow pipeline's ID and general
Glows and the VAE pipeline's three VAEs, compute each family's statistics
(``jaxood.detectors.flow_statistics`` / ``vae_statistics``) on one set of images,
cached in ``<setting>/statistics.npz``, then fit ``density_of_states`` on the ID fit
set (training images of every model) per family and over all families, and score
the ID test images and each OOD set. ``results.json`` also holds the ablation
(single-feature and drop-one AUROCs) and the published detectors recomputed on the
same images. Fitting reads the ``fit`` table alone: :func:`fit_and_score`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np

from experiments import configured, flow_pipeline, vae_pipeline
from experiments import tables as generated  # (here a table is a statistics table)
from jaxood import data, detectors, io, metrics, plots

FIT = "fit"  # the table of ID training statistics; nothing else is fit on
FLOW = "glow"  # the flow family's feature prefix; the VAEs use their model names
FLOW_STAGES = ("id", "general")  # the flows whose statistics are features


def fit_and_score(
    tables: Mapping[str, Mapping[str, np.ndarray]],
    features: list[str],
    detector: detectors.Detector,
) -> dict[str, np.ndarray]:
    """Fits ``detector`` on ``tables[FIT]`` (ID training images) and scores every
    other table. The only place DoSE is fit: no OOD row can enter the fit."""
    select = lambda t: {f: t[f] for f in features}  # noqa: E731
    state = detector.fit(select(tables[FIT]))
    return {
        name: np.asarray(detector.score(state, select(t)))
        for name, t in tables.items()
        if name != FIT
    }


def load_images(config, setting: str) -> dict[str, np.ndarray]:
    """uint8 ``(N, 28, 28, 1)``: the fit set (ID training images in the training
    split of every model), ID test images and each OOD set."""
    flow, vae, dc = config.flow[setting], config.vae, config.data
    images, labels = data.load(setting, "train", with_labels=True)
    flow_train = flow_pipeline.split_indices(flow, labels)[0]
    vae_train = configured.split_indices(vae, labels)[0]
    everyone = np.intersect1d(flow_train, vae_train)
    return {
        FIT: configured.subset(images[everyone], dc.num_fit, config.seed),
        "id_test": configured.subset(
            data.load(setting, "test"), dc.max_eval, config.seed
        ),
        **configured.load_sets(dc.ood[setting], dc.max_eval, config.seed),
    }


def restore_models(config, workdir: Path, setting: str) -> tuple[dict, dict]:
    """The trained models of one setting (trained where missing),
    ``{"glow": (model, {"id", "general"}), kind: (model, params)}``, and their
    training summaries. An empty configured folder is a sub-folder of ``workdir``."""
    folder = lambda f, name: configured.resolve(f) if f else workdir / name  # noqa: E731
    flow, vae = config.flow[setting], config.vae
    flow_dir = folder(config.flow_workdirs[setting], f"flow_{setting}")
    params = flow_pipeline.train_all(flow, flow_dir, flow_pipeline.load_sets(flow))
    models = {FLOW: (flow_pipeline.build_model(flow), params)}
    summaries = {FLOW: {s: io.stage_summary(flow_dir / s) for s in FLOW_STAGES}}
    vae_dir, vae_sets = (
        folder(config.vae_workdir, "vae"),
        configured.load_setting(vae, setting),
    )
    for kind in vae.models:
        p = vae_pipeline.train_model(vae, vae_dir, setting, kind, vae_sets)
        models[kind] = (vae_pipeline.build_model(vae, kind), p)
        summaries[kind] = io.stage_summary(vae_dir / setting / kind)
    return models, summaries


def _model_statistics(config, name, model, params, x, key, desc) -> dict:
    """One model's raw statistics table of the uint8 images ``x``."""
    dc = config.dose
    if name == FLOW:
        size = model.config.image_shape[0]
        return detectors.flow_statistics(
            model,
            params["id"],
            data.resize(x, size) if x.shape[1] != size else x,
            general_params=params["general"],
            codec=dc.codec,
            desc=desc,
        )
    return detectors.vae_statistics(
        model,
        params,
        x,
        key,
        num_samples=dc.vae_samples,
        chunk_size=dc.vae_chunk,
        desc=desc,
    )


def statistics(config, images: dict, models: dict) -> dict[str, dict]:
    """``{set: {"<model>/<statistic>": (N,)}}`` for every model of the setting,
    typicality included (its entropy from the fit set)."""
    key = jax.random.key(config.seed)
    names = [FIT] + [s for s in images if s != FIT]
    per_model = {}
    for i, (name, (model, params)) in enumerate(models.items()):
        raw = [
            _model_statistics(
                config,
                name,
                model,
                params,
                images[s],
                jax.random.fold_in(key, 1000 * i + j),
                f"{name} {s}",
            )
            for j, s in enumerate(names)
        ]
        per_model[name] = dict(zip(names, detectors.with_typicality(*raw), strict=True))
    return {
        s: {f"{m}/{k}": v for m, t in per_model.items() for k, v in t[s].items()}
        for s in names
    }


def cached_statistics(config, workdir: Path, setting: str, models, summaries):
    """:func:`statistics` of one setting's ``models``, ``{set: {feature: (N,)}}``,
    cached in ``<setting>/statistics.npz`` against the data, the statistics'
    settings and every model's training (``summaries``)."""
    dc = config.dose
    key = io.as_json(
        {
            "seed": config.seed,
            "data": config.data.to_dict(),
            "statistics": [dc.vae_samples, dc.vae_chunk, dc.codec],
            "models": summaries,
        }
    )
    path = workdir / setting / "statistics.npz"

    def compute():
        tables = statistics(config, load_images(config, setting), models)
        return {f"{s}|{f}": v for s, t in tables.items() for f, v in t.items()}

    tables = {}
    cached = io.cached_arrays(path, path.with_name("statistics_key.json"), key, compute)
    for name, values in cached.items():
        table, feature = name.split("|")
        tables.setdefault(table, {})[feature] = values
    return tables


def single_detectors(table: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The published detectors of every model of the table (anomaly scores)."""
    out = {}
    for model in sorted({f.split("/")[0] for f in table}):
        own = {
            f.split("/", 1)[1]: v for f, v in table.items() if f.startswith(model + "/")
        }
        family = "flow" if model == FLOW else "vae"
        for label, score in detectors.published_scores(own, family).items():
            out[f"{label} ({model})"] = score
    return out


def flip_asymmetry(flipped: np.ndarray) -> np.ndarray:
    """``mean |x − flip(x)| / 255`` per vertically flipped image: the flip of a
    nearly symmetric image is close to an in-distribution image."""
    x = flipped.astype(np.float64) / 255
    return np.mean(np.abs(x - x[:, ::-1]), axis=(1, 2, 3))


def evaluate(config, tables: dict[str, dict], images: dict[str, np.ndarray]) -> dict:
    """DoSE per family and method, the published detectors, the ablation and, for
    vertically flipped sets, the AUROC by the flipped images' asymmetry."""
    dc = config.dose
    oods = [s for s in tables if s.startswith("ood/")]

    def auroc_table(scores, with_ci=True):
        return {
            ood.removeprefix("ood/"): metrics.summary(
                scores["id_test"],
                scores[ood],
                ci_resamples=dc.ci_resamples if with_ci else 0,
                seed=config.seed,
            )
            for ood in oods
        }

    def detector(method):
        return detectors.density_of_states(
            method, ridge=dc.ridge, num_components=dc.num_components
        )

    flow = [f for f in sorted(tables[FIT]) if f.startswith(FLOW + "/")]
    vae = [f for f in sorted(tables[FIT]) if f not in flow]
    groups = {"flow": flow, "vae": vae, "all": flow + vae}
    out = {"name": config.name, "features": groups, "sizes": {}, "dose": {}}
    out["sizes"] = {s: len(next(iter(t.values()))) for s, t in tables.items()}
    scores = {
        (method, family): fit_and_score(tables, features, detector(method))
        for method in (dc.method, dc.alternative)
        for family, features in groups.items()
        if features
    }
    for (method, family), per_set in scores.items():
        out["dose"].setdefault(method, {})[family] = auroc_table(per_set)
    primary = scores[dc.method, "all"]
    out["flip_asymmetry"] = {
        ood.removeprefix("ood/"): metrics.auroc_by_quantile(
            flip_asymmetry(images[ood]), primary["id_test"], primary[ood]
        )
        for ood in oods
        if ood.endswith("_vflip")
    }
    per_set = {s: single_detectors(t) for s, t in tables.items() if s != FIT}
    out["single"] = {
        d: auroc_table({s: per_set[s][d] for s in per_set}) for d in per_set["id_test"]
    }
    kde, everything = detector(dc.method), groups["all"]
    auroc = lambda scores: {  # noqa: E731
        o: m["auroc"] for o, m in auroc_table(scores, with_ci=False).items()
    }
    out["ablation"] = {
        "single_feature": {
            f: auroc(fit_and_score(tables, [f], kde)) for f in everything
        },
        "drop_one": {
            f: auroc(fit_and_score(tables, [g for g in everything if g != f], kde))
            for f in everything
        },
    }
    return out


def train_models(config, workdir: Path) -> dict:
    """Every setting's models, trained or restored: ``{setting: (models,
    summaries)}`` of :func:`restore_models`."""
    return {s: restore_models(config, workdir, s) for s in config.data.ood}


def score(config, workdir: Path, trained) -> dict:
    settings = {}
    for setting, (models, summaries) in trained.items():
        tables = cached_statistics(config, workdir, setting, models, summaries)
        settings[setting] = evaluate(config, tables, load_images(config, setting))
    return {"name": config.name, "settings": settings}


def report(config, workdir: Path, trained, results: dict, command: str) -> str:
    """Writes ``report.md`` with the DoSE tables and a heat map of the single-
    feature AUROCs; returns the tables."""
    for setting, s in results["settings"].items():
        single = s["ablation"]["single_feature"]
        oods = list(next(iter(single.values())))
        grid = np.array([[v[o] for o in oods] for v in single.values()])
        plots.auroc_heatmap(grid, list(single), oods,
                            workdir / f"single_features_{setting}.png",
                            f"{setting}: AUROC of DoSE on one feature")  # fmt: skip
    figures = {f"single features, {s}": f"single_features_{s}.png"
               for s in results["settings"]}  # fmt: skip
    title, block = f"{config.name}: density of states", generated.dose_block(results)
    return generated.write_report(workdir, title, block, figures, command)
