"""Train, score and report the VAE experiments (Vacant Holes, Glazunov & Zarras 2023).

    python -m experiments.vae_pipeline --config experiments/configs/vae_ood.py \
        --workdir runs/vae_ood [--mode {train,score,all}]

For every in-distribution setting (Fashion-MNIST, MNIST-5k) and model (vanilla,
Lipschitz, hyperspherical) a sub-directory ``<setting>/<model>`` holds the training
run (``config.json``, ``metrics.jsonl``, checkpoints, ``final_params``,
``summary.json``); finished runs are never redone, interrupted ones resume. Scoring
writes ``scores.npz`` per model and ``results.json`` + ``report.md`` + plots at the
top of the run directory; ``python -m experiments.tables`` turns ``results.json`` into
the tables of ``experiments/README.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from experiments import report
from experiments.run_dir import (
    best_params,
    check_fingerprint,
    subset,
    train_seconds,
    write_json,
)
from jaxood import checkpoint, data, detectors, metrics, train, vae
from jaxood.batching import map_batches
from jaxood.data import sources

DETECTORS = {
    "iwae": "−log p(x), IWAE with N samples",
    "typicality": "|−log p(x) − Ĥ| (M = 1), Ĥ on ID validation",
    "hole": "hole indicator: std of log p(x|z_i) over the N draws",
    "regret": "likelihood regret (100 Adam steps on an encoder copy)",
}
FPR_TPR = 0.8


def load_config(path: str) -> ml_collections.ConfigDict:
    """``path/to/config.py[:variant]`` -> the file's ``get_config(variant)``."""
    file, _, variant = path.partition(":")
    spec = importlib.util.spec_from_file_location("vae_config", file)
    if spec is None or not Path(file).is_file():
        raise SystemExit(f"No config file {file!r}.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def build_model(config, kind: str, image_shape=(28, 28, 1)) -> vae.VAE:
    spec = config.models[kind].to_dict()
    spec["hidden"] = tuple(spec.get("hidden", (256, 128)))
    return vae.VAE(
        vae.VAEConfig(image_shape=image_shape, likelihood=config.likelihood, **spec)
    )


def load_sets(config, setting: str) -> dict[str, np.ndarray]:
    """uint8 ``(N, 28, 28, 1)`` sets: id_train, id_val, id_test and ``ood/<name>``."""
    s = config.settings[setting]
    images, labels = data.load(setting, s.train_split, with_labels=True)
    train_idx, val_idx = sources.stratified_split(labels, config.val_size, config.seed)
    limit = config.score.max_eval
    sets = {
        "id_train": images[train_idx],
        "id_val": subset(images[val_idx], limit, config.seed),
        "id_test": subset(data.load(setting, s.test_split), limit, config.seed),
    }
    for entry in s.ood:
        name, split = entry.split(":")
        sets[f"ood/{name}"] = subset(data.load(name, split), limit, config.seed)
    return sets


def _fingerprint(config, setting: str, kind: str) -> dict:
    fingerprint = {
        "setting": setting,
        "model": kind,
        "seed": config.seed,
        "val_size": config.val_size,
        "steps": config.settings[setting].steps,
        "architecture": config.models[kind].to_dict(),
        "likelihood": config.likelihood,
        "train": config.train.to_dict(),
    }
    return json.loads(json.dumps(fingerprint))


def train_model(config, workdir: Path, setting: str, kind: str, sets) -> dict:
    """Trains (or resumes) one VAE; returns its validation-best params."""
    run = workdir / setting / kind
    model = build_model(config, kind)
    template = vae.init(model, jax.random.key(config.seed))
    final = run / "final_params"
    fingerprint = _fingerprint(config, setting, kind)
    if final.is_dir():
        check_fingerprint(run, fingerprint)
        return checkpoint.load_params(final, template)
    write_json(run / "config.json", fingerprint)
    tc = config.train
    optimizer = train.make_optimizer(tc.learning_rate, optimizer="adam")
    loss = vae.negative_elbo_loss(model)
    train_images, val_images = sets["id_train"], data.to_unit_interval(sets["id_val"])
    val_images = val_images[: tc.eval_images]
    seed = config.seed

    def batch_fn(step):
        index = train.epoch_batch_indices(len(train_images), tc.batch_size, step, seed)
        return data.to_unit_interval(train_images[index])

    @jax.jit
    def val_loss(params):
        return loss(params, val_images, jax.random.key(seed))[0]

    steps = config.settings[setting].steps
    tic = time.perf_counter()
    state = train.fit(
        workdir=run,
        state=train.init_state(template, optimizer),
        train_step=train.make_train_step(loss, optimizer),
        batch_fn=batch_fn,
        num_steps=steps,
        key=jax.random.key(seed),
        eval_fn=lambda p: {"val_loss": float(val_loss(p))},
        eval_every=tc.eval_every,
        log_every=tc.log_every,
        checkpoint_every=tc.checkpoint_every,
        progress_metric=lambda r: {k: r[k] for k in ("loss", "val_loss") if k in r},
        description=f"{setting}/{kind}",
    )
    params, best_step = best_params(run, state)
    write_json(
        run / "summary.json",
        {
            "steps": steps,
            "selected_step": best_step,
            "val_negative_elbo": float(val_loss(params)),
            "num_skipped": int(state.num_skipped),
            "train_seconds": train_seconds(run),
            "session_seconds": time.perf_counter() - tic,
        },
    )
    checkpoint.save_params(final, params)
    return params


def iwae_and_hole(model, params, images, key, sc, batch_size=100, desc="score"):
    """IWAE log p (nats) and hole indicator of [0, 1] images, from the same draws."""

    def one(i, batch):
        log_lik, iwae = vae.importance_estimates(
            model, params, batch, jax.random.fold_in(key, i), sc.num_samples,
            sc.chunk_size,
        )  # fmt: skip
        return iwae, detectors.hole_indicator(log_lik)

    return map_batches(one, images, batch_size, desc=desc)


def _regret(model, params, images, key, sc, batch_size=50):
    def one(i, batch):
        return detectors.likelihood_regret(
            model,
            params,
            batch,
            jax.random.fold_in(key, i),
            steps=sc.regret_steps,
            num_samples=sc.regret_samples,
            chunk_size=min(sc.chunk_size, sc.regret_samples),
        ).regret

    return map_batches(one, images, batch_size, desc="regret")


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
    recorded = path.with_name("score_config.json")
    wanted = json.loads(json.dumps(config.score.to_dict()))
    if (
        path.exists()
        and recorded.exists()
        and json.loads(recorded.read_text()) == wanted
    ):
        return dict(np.load(path))
    model = build_model(config, kind)
    sc = config.score
    key = jax.random.key(config.seed + 1)
    scores = {}
    names = [k for k in sets if k != "id_train"]
    for i, name in enumerate(tqdm(names, desc=f"{setting}/{kind}", disable=None)):
        images = data.to_unit_interval(sets[name])
        iwae, hole = iwae_and_hole(
            model, params, images, jax.random.fold_in(key, i), sc, desc=name
        )
        scores[f"{name}/log_p"], scores[f"{name}/hole"] = iwae, hole
        if name != "id_val":
            scores[f"{name}/regret"] = _regret(
                model, params, images[: sc.regret_eval],
                jax.random.fold_in(key, 100 + i), sc,
            )  # fmt: skip
    if setting == sc.scaling_setting and config.models[kind].latent == "gaussian":
        ood = data.to_unit_interval(sets[f"ood/{sc.scaling_ood}"])
        for s in sc.scales:
            _, hole = iwae_and_hole(
                model, params, ood * s, jax.random.fold_in(key, 200 + s), sc,
                desc=f"×{s}",
            )  # fmt: skip
            scores[f"scaled/{s}/hole"] = hole
    tmp = path.with_name("scores.tmp.npz")
    np.savez(tmp, **scores)
    tmp.replace(path)
    write_json(recorded, wanted)  # scores of another scoring config are recomputed
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
    results = {
        "command": config.command,
        "num_samples": config.score.num_samples,
        "regret": {
            "steps": config.score.regret_steps,
            "num_samples": config.score.regret_samples,
            "images_per_set": config.score.regret_eval,
        },
        "lipschitz_constant": config.models.lipschitz.lipschitz,
        "models": {
            k: config.models[k].to_dict() | {"likelihood": config.likelihood}
            for k in config.models
        },
        "training": summaries,
        "pairs": {},
        "mean_nll_nats": {},  # IWAE; not bits/dim: Bernoulli is no pmf
        "scaling": {},
    }
    for (setting, kind), scores in all_scores.items():
        results["mean_nll_nats"].setdefault(setting, {})[kind] = {
            name.removesuffix("/log_p"): float(-np.mean(v))
            for name, v in scores.items()
            if name.endswith("/log_p")
        }
        ood_sets = [
            k.removeprefix("ood/").removesuffix("/log_p")
            for k in scores
            if k.startswith("ood/") and k.endswith("/log_p")
        ]
        score_in = detector_scores(scores, "id_test")
        for ood in ood_sets:
            score_out = detector_scores(scores, f"ood/{ood}")
            pair = results["pairs"].setdefault(f"{setting}→{ood}", {})
            pair[kind] = {
                d: _pair_metrics(score_in[d], score_out[d]) for d in DETECTORS
            }
        scaled = [k for k in scores if k.startswith("scaled/")]
        if scaled:
            results["scaling"][kind] = {
                k.split("/")[1]: metrics.auroc(scores["id_test/hole"], scores[k])
                for k in scaled
            }
    return results


def _plots(workdir: Path, results: dict, all_scores: dict) -> None:
    plt = report.plt
    pairs = list(results["pairs"])
    kinds = list(results["models"])
    fig, axes = plt.subplots(
        len(pairs), len(kinds), figsize=(4 * len(kinds), 2.6 * len(pairs)),
        squeeze=False,
    )  # fmt: skip
    for row, pair in enumerate(pairs):
        setting, ood = pair.split("→")
        for col, kind in enumerate(kinds):
            ax = axes[row, col]
            scores = all_scores[(setting, kind)]
            for name, label in (("id_test", setting), (f"ood/{ood}", ood)):
                ax.hist(scores[f"{name}/hole"], bins=40, alpha=0.6, label=label,
                        density=True)  # fmt: skip
            ax.set_title(f"{kind}: {pair}", fontsize=8)
            ax.set_xlabel("hole indicator [nats]", fontsize=7)
            ax.legend(fontsize=6)
    report.save_figure(fig, workdir / "hole_histograms.png")
    if results["scaling"]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for kind, curve in results["scaling"].items():
            scales = sorted(curve, key=float)
            ax.plot([float(s) for s in scales], [curve[s] for s in scales], "o-",
                    label=kind)  # fmt: skip
        ax.set(xlabel="OOD pixel scale s", ylabel="hole-indicator AUROC",
               ylim=(-0.02, 1.02))  # fmt: skip
        ax.legend()
        report.save_figure(fig, workdir / "scaling.png")


def _samples(config, workdir: Path, params: dict) -> None:
    for (setting, kind), p in params.items():
        model = build_model(config, kind)
        images = vae.sample(model, p, jax.random.key(config.seed), 64)
        report.plot_image_grid(
            np.asarray(jnp.round(images * 255), np.uint8),
            workdir / f"samples_{setting}_{kind}.png",
            f"{kind} VAE on {setting}: decoder means of prior draws",
        )


def _report(workdir: Path, results: dict) -> str:
    rows = []
    for pair, per_model in results["pairs"].items():
        for kind, per_detector in per_model.items():
            cells = [
                f"{m['auroc']:.3f} / {m['aupr']:.3f} / {m['fpr80']:.3f}"
                for m in per_detector.values()
            ]
            rows.append(f"| {pair} | {kind} | " + " | ".join(cells) + " |")
    head = "| pair | model | " + " | ".join(DETECTORS) + " |"
    table = "\n".join([head, "|---" * (len(DETECTORS) + 2) + "|", *rows])
    (workdir / "report.md").write_text(
        f"# VAE OOD report\n\nCommand: `{results['command']}`. Cells: AUROC / AUPR "
        f"(OOD positive) / FPR at {FPR_TPR:.0%} TPR.\n\n{table}\n\n"
        "![hole indicator](hole_histograms.png)\n\n![scaling](scaling.png)\n"
    )
    return table


def run(config, workdir: Path, mode: str = "all") -> dict | None:
    workdir.mkdir(parents=True, exist_ok=True)
    params, sets_by_setting, summaries = {}, {}, {}
    for setting in config.settings:
        sets_by_setting[setting] = load_sets(config, setting)
        for kind in config.models:
            params[(setting, kind)] = train_model(
                config, workdir, setting, kind, sets_by_setting[setting]
            )
            summary = workdir / setting / kind / "summary.json"
            summaries[f"{setting}/{kind}"] = json.loads(summary.read_text())
    if mode == "train":
        return None
    all_scores = {
        (setting, kind): score_model(
            config, workdir, setting, kind, sets_by_setting[setting], p
        )
        for (setting, kind), p in params.items()
    }
    results = summarise(config, all_scores, summaries)
    write_json(workdir / "results.json", results)
    _plots(workdir, results, all_scores)
    _samples(config, workdir, params)
    print(_report(workdir, results))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.vae_pipeline")
    parser.add_argument("--config", default="experiments/configs/vae_ood.py")
    parser.add_argument("--workdir", default="runs/vae_ood")
    parser.add_argument("--mode", choices=("train", "score", "all"), default="all")
    args = parser.parse_args(argv)
    run(load_config(args.config), Path(args.workdir), args.mode)


if __name__ == "__main__":
    main()
