"""Train, score and report the VAE experiments (Vacant Holes, Glazunov & Zarras 2023).

    python -m experiments.main --config experiments/configs/vae_ood.py \
        --workdir runs/vae_ood [--mode {train,score,report,all}]

For every in-distribution setting (Fashion-MNIST, MNIST-5k) and model (vanilla,
Lipschitz, hyperspherical) a sub-directory ``<setting>/<model>`` holds the training
run (``config.json``, ``metrics.jsonl``, checkpoints, ``final_params``,
``summary.json``); finished runs are never redone, interrupted ones resume. Scoring
writes ``scores.npz`` per model and ``results.json`` + ``report.md`` + plots at the
top of the run directory.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from experiments import configured
from jaxood import batching, data, detectors, io, metrics, plots, train, vae

DETECTORS = {
    "iwae": "−log p(x), IWAE with N samples",
    "typicality": "|−log p(x) − Ĥ| (M = 1), Ĥ on ID validation",
    "hole": "hole indicator: std of log p(x|z_i) over the N draws",
    "regret": "likelihood regret (100 Adam steps on an encoder copy)",
}
FPR_TPR = 0.8


def build_model(config, kind: str) -> vae.VAE:
    spec = config.models[kind].to_dict()
    spec["hidden"] = tuple(spec.get("hidden", (256, 128)))
    shape = tuple(config.image_shape)
    return vae.VAE(
        vae.VAEConfig(image_shape=shape, likelihood=config.likelihood, **spec)
    )


def fingerprint(config, setting: str, kind: str) -> dict:
    """What determines one VAE's trained params."""
    return configured.fingerprint(config, setting, model=kind,
                                  architecture=config.models[kind].to_dict(),
                                  likelihood=config.likelihood)  # fmt: skip


def train_model(config, workdir: Path, setting: str, kind: str, sets) -> dict:
    """Trains (or resumes) one VAE; returns its validation-best params."""
    run = workdir / setting / kind
    model = build_model(config, kind)
    init = lambda: vae.init(model, jax.random.key(config.seed))  # noqa: E731
    template = jax.eval_shape(init)  # a restore compiles no random init
    tc, seed, loss = config.train, config.seed, vae.negative_elbo_loss(model)
    val_images = data.to_unit_interval(sets["id_val"])[: tc.eval_images]
    batches = train.epoch_batches(sets["id_train"], tc.batch_size, seed)
    batch_fn = lambda step: data.to_unit_interval(batches(step))  # noqa: E731

    val_loss = train.held_out_loss(loss, val_images, jax.random.key(seed))
    return io.restore_or_fit(
        run, fingerprint(config, setting, kind), template, init,
        loss, io.optimizer(tc.learning_rate, optimizer="adam"), batch_fn,
        config.settings[setting].steps, jax.random.key(seed),
        lambda p: {"val_loss": val_loss(p)},
        final_metrics=lambda p: {"val_negative_elbo": val_loss(p)},
        description=f"{setting}/{kind}", **configured.training(config),
    )  # fmt: skip


def _regret(model, params, images, key, sc, batch_size=50):
    def one(i, batch):
        chunk = min(sc.chunk_size, sc.regret_samples)
        return detectors.likelihood_regret(
            model, params, batch, jax.random.fold_in(key, i), steps=sc.regret_steps,
            num_samples=sc.regret_samples, chunk_size=chunk).regret  # fmt: skip

    return batching.map_batches(one, images, batch_size, desc="regret")


def _pair_metrics(score_in: np.ndarray, score_out: np.ndarray) -> dict:
    return {
        "auroc": metrics.auroc(score_in, score_out),
        "aupr": metrics.aupr_out(score_in, score_out),
        "fpr80": metrics.fpr_at_tpr(score_in, score_out, FPR_TPR),
        "n_in": len(score_in),
        "n_out": len(score_out),
    }


def score_model(config, workdir: Path, setting: str, kind: str, sets, params):
    """Every detector's scores on every set; cached in ``scores.npz``."""
    path = workdir / setting / kind / "scores.npz"
    key_file = path.with_name("score_config.json")  # another config: recomputed
    compute = lambda: _scores(config, setting, kind, sets, params)  # noqa: E731
    return io.cached_arrays(path, key_file, config.score.to_dict(), compute)


def _scores(config, setting: str, kind: str, sets, params) -> dict:
    model = build_model(config, kind)
    sc = config.score
    key = jax.random.key(config.seed + 1)
    scores, draws = {}, {"num_samples": sc.num_samples, "chunk_size": sc.chunk_size}

    def statistics(images, key, desc):  # IWAE and hole indicator, the same draws
        return detectors.vae_statistics(model, params, images, key, desc=desc, **draws)

    names = [k for k in sets if k != "id_train"]
    for i, name in enumerate(tqdm(names, desc=f"{setting}/{kind}", disable=None)):
        stats = statistics(sets[name], jax.random.fold_in(key, i), name)
        scores[f"{name}/log_p"], scores[f"{name}/hole"] = stats["log_p"], stats["hole"]
        if name != "id_val":
            scores[f"{name}/regret"] = _regret(
                model,
                params,
                data.to_unit_interval(sets[name][: sc.regret_eval]),
                jax.random.fold_in(key, 100 + i),
                sc,
            )
    if setting == sc.scaling_setting and config.models[kind].latent == "gaussian":
        ood = data.to_unit_interval(sets[f"ood/{sc.scaling_ood}"])
        for s in sc.scales:
            scaled = statistics(ood * s, jax.random.fold_in(key, 200 + s), f"×{s}")
            scores[f"scaled/{s}/hole"] = scaled["hole"]
    return scores


def detector_scores(scores: dict, name: str) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = OOD) of one evaluation set, per detector."""
    typicality = detectors.typicality()
    stats = typicality.fit(-scores["id_val/log_p"])
    return {
        "iwae": -scores[f"{name}/log_p"],
        "typicality": np.asarray(typicality.score(stats, -scores[f"{name}/log_p"])),
        "hole": scores[f"{name}/hole"],
        "regret": scores[f"{name}/regret"],
    }


def summarise(config, all_scores: dict, summaries: dict) -> dict:
    sc = config.score
    results = {
        "name": config.name,
        "num_samples": sc.num_samples,
        "regret": {"steps": sc.regret_steps, "num_samples": sc.regret_samples,
                   "images_per_set": sc.regret_eval},
        "lipschitz_constant": config.models.lipschitz.lipschitz,
        "models": {k: config.models[k].to_dict() | {"likelihood": config.likelihood}
                   for k in config.models},
        "training": summaries,
        "pairs": {},
        "mean_nll_nats": {},  # IWAE; not bits/dim: Bernoulli is no pmf
        "scaling": {},
    }  # fmt: skip
    for (setting, kind), scores in all_scores.items():
        sets = [k.removesuffix("/log_p") for k in scores if k.endswith("/log_p")]
        results["mean_nll_nats"].setdefault(setting, {})[kind] = {
            name: float(-np.mean(scores[f"{name}/log_p"])) for name in sets
        }
        score_in = detector_scores(scores, "id_test")
        for ood in [name for name in sets if name.startswith("ood/")]:
            score_out = detector_scores(scores, ood)
            pair = results["pairs"].setdefault(
                f"{setting}→{ood.removeprefix('ood/')}", {}
            )
            pair[kind] = {
                d: _pair_metrics(score_in[d], score_out[d]) for d in DETECTORS
            }
        if scaled := [k for k in scores if k.startswith("scaled/")]:
            results["scaling"][kind] = {
                k.split("/")[1]: metrics.auroc(scores["id_test/hole"], scores[k])
                for k in scaled
            }
    return results


def train_models(config, workdir: Path):
    """Every setting × model, trained or restored: ``(sets, {(setting, kind):
    params})``."""
    sets, params = {}, {}
    for setting in config.settings:
        sets[setting] = configured.load_setting(config, setting)
        for kind in config.models:
            params[setting, kind] = train_model(
                config, workdir, setting, kind, sets[setting]
            )
    return sets, params


def _all_scores(config, workdir: Path, trained) -> dict:
    sets, params = trained
    return {(s, kind): score_model(config, workdir, s, kind, sets[s], p)
            for (s, kind), p in params.items()}  # fmt: skip


def score(config, workdir: Path, trained) -> dict:
    summaries = {f"{s}/{k}": io.stage_summary(workdir / s / k) for s, k in trained[1]}
    return summarise(config, _all_scores(config, workdir, trained), summaries)


def figures(config, workdir: Path, trained, results) -> dict:
    """ROC curves and histograms of the hole indicator, its AUROC against the
    scale of the OOD pixels, and samples of every VAE."""
    all_scores, params = _all_scores(config, workdir, trained), trained[1]
    hole = {}
    for pair in results["pairs"]:
        setting, ood = pair.split("→")
        for kind in results["models"]:
            per_set = all_scores[setting, kind]
            hole[f"{kind}: {pair}"] = (per_set["id_test/hole"],
                                       {ood: per_set[f"ood/{ood}/hole"]})  # fmt: skip
    plots.roc_and_histograms(hole, workdir / "hole_histograms.png")
    scaling = {k: ([float(s) for s in c], list(c.values()))
               for k, c in results["scaling"].items()}  # fmt: skip
    plots.line_panels([{"series": scaling, "xlabel": "OOD pixel scale s",
                        "ylabel": "hole-indicator AUROC", "ylim": plots.AUROC_LIMITS}],
                      workdir / "scaling.png")  # fmt: skip
    for (setting, kind), p in params.items():
        num = config.report.num_samples
        x = vae.sample(build_model(config, kind), p, jax.random.key(config.seed), num)
        plots.image_grid(np.asarray(np.round(np.asarray(x) * 255), np.uint8),
                         workdir / f"samples_{setting}_{kind}.png",
                         f"{kind} VAE on {setting}: decoder means")  # fmt: skip
    return {"hole indicator": "hole_histograms.png", "scaling": "scaling.png"}
