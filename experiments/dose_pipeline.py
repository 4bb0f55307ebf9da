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
    everyone, seed = np.intersect1d(flow_train, vae_train), config.seed
    return {FIT: configured.subset(images[everyone], dc.num_fit, seed),
            "id_test": configured.subset(data.load(setting, "test"), dc.max_eval, seed),
            **configured.load_sets(dc.ood[setting], dc.max_eval, seed)}  # fmt: skip


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
    vae_dir = folder(config.vae_workdir, "vae")
    vae_sets = configured.load_setting(vae, setting)
    for kind in vae.models:
        p = vae_pipeline.train_model(vae, vae_dir, setting, kind, vae_sets)
        models[kind] = (vae_pipeline.build_model(vae, kind), p)
        summaries[kind] = io.stage_summary(vae_dir / setting / kind)
    return models, summaries


def _model_statistics(config, name, model, params, x, key, desc) -> dict:
    """One model's raw statistics table of the uint8 images ``x``."""
    dc = config.dose
    if name != FLOW:
        return detectors.vae_statistics(model, params, x, key, desc=desc,
                                        num_samples=dc.vae_samples,
                                        chunk_size=dc.vae_chunk)  # fmt: skip
    size = model.config.image_shape[0]
    x = data.resize(x, size) if x.shape[1] != size else x
    return detectors.flow_statistics(model, params["id"], x, codec=dc.codec, desc=desc,
                                     general_params=params["general"])  # fmt: skip


def statistics(config, images: dict, models: dict) -> dict[str, dict]:
    """``{set: {"<model>/<statistic>": (N,)}}`` for every model of the setting,
    typicality included (its entropy from the fit set)."""
    key = jax.random.key(config.seed)
    names = [FIT] + [s for s in images if s != FIT]
    out = {s: {} for s in names}
    for i, (name, (model, params)) in enumerate(models.items()):
        raw = [_model_statistics(config, name, model, params, images[s],
                                 jax.random.fold_in(key, 1000 * i + j), f"{name} {s}")
               for j, s in enumerate(names)]  # fmt: skip
        for s, table in zip(names, detectors.with_typicality(*raw), strict=True):
            out[s] |= {f"{name}/{k}": v for k, v in table.items()}
    return out


def cached_statistics(config, workdir: Path, setting: str, models, summaries):
    """:func:`statistics` of one setting's ``models``, ``{set: {feature: (N,)}}``,
    cached in ``<setting>/statistics.npz`` against the data, the statistics'
    settings and every model's training (``summaries``)."""
    dc, path = config.dose, workdir / setting / "statistics.npz"
    key = io.as_json({"seed": config.seed, "data": config.data.to_dict(),
                      "statistics": [dc.vae_samples, dc.vae_chunk, dc.codec],
                      "models": summaries})  # fmt: skip

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

    def auroc_table(scores, ci_resamples=dc.ci_resamples):
        return {o.removeprefix("ood/"): metrics.summary(
                    scores["id_test"], scores[o], ci_resamples=ci_resamples,
                    seed=config.seed) for o in oods}  # fmt: skip

    def aurocs(scores):
        return {o: m["auroc"] for o, m in auroc_table(scores, 0).items()}

    flow = [f for f in sorted(tables[FIT]) if f.startswith(FLOW + "/")]
    vae = [f for f in sorted(tables[FIT]) if f not in flow]
    groups = {"flow": flow, "vae": vae, "all": flow + vae}
    out = {"name": config.name, "features": groups, "dose": {}}
    out["sizes"] = {s: len(next(iter(t.values()))) for s, t in tables.items()}
    detector = lambda method: detectors.density_of_states(  # noqa: E731
        method, ridge=dc.ridge, num_components=dc.num_components)  # fmt: skip
    scores = {(method, family): fit_and_score(tables, features, detector(method))
              for method in (dc.method, dc.alternative)
              for family, features in groups.items() if features}  # fmt: skip
    for (method, family), per_set in scores.items():
        out["dose"].setdefault(method, {})[family] = auroc_table(per_set)
    primary = scores[dc.method, "all"]
    out["flip_asymmetry"] = {
        o.removeprefix("ood/"): metrics.auroc_by_quantile(
            flip_asymmetry(images[o]), primary["id_test"], primary[o])
        for o in oods if o.endswith("_vflip")}  # fmt: skip
    per_set = {s: single_detectors(t) for s, t in tables.items() if s != FIT}
    out["single"] = {
        d: auroc_table({s: per_set[s][d] for s in per_set}) for d in per_set["id_test"]
    }
    kde, every = detector(dc.method), groups["all"]
    out["ablation"] = {
        "single_feature": {f: aurocs(fit_and_score(tables, [f], kde)) for f in every},
        "drop_one": {f: aurocs(fit_and_score(tables, [g for g in every if g != f], kde))
                     for f in every},
    }  # fmt: skip
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


def figures(config, workdir: Path, trained, results: dict) -> dict:
    """A heat map of the single-feature AUROCs per setting."""
    for setting, s in results["settings"].items():
        single = s["ablation"]["single_feature"]
        oods = list(next(iter(single.values())))
        grid = np.array([[v[o] for o in oods] for v in single.values()])
        plots.auroc_heatmap(grid, list(single), oods,
                            workdir / f"single_features_{setting}.png",
                            f"{setting}: AUROC of DoSE on one feature")  # fmt: skip
    return {f"single features, {s}": f"single_features_{s}.png"
            for s in results["settings"]}  # fmt: skip
