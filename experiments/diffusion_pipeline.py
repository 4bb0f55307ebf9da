"""Train, score and report the diffusion experiment (likelihood, FLIPD, dual threshold).

    python -m experiments.main --config experiments/configs/diffusion_fmnist.py \
        --workdir runs/diffusion_fmnist [--mode {train,score,report,all}]

One stage ``<setting>/score_model`` per in-distribution setting holds the training
run (resumable; the EMA params are kept). Scoring writes ``<setting>/scores.npz``
(bits/dim through the probability-flow ODE and FLIPD at every t0 of the sweep, per
image) and ``results.json`` + ``report.md`` + plots at the top of the run directory.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import configured
from jaxood import detectors, diffusion, io, plots, train

STAGE = "score_model"


def build_model(config) -> diffusion.ScoreModel:
    return diffusion.ScoreModel(diffusion.DiffusionConfig(**config.model.to_dict()))


def fingerprint(config, setting: str) -> dict:
    """What determines one diffusion model's trained params."""
    return configured.fingerprint(config, setting, model=config.model.to_dict())


def train_model(config, workdir: Path, setting: str, sets) -> dict:
    """Trains (or resumes, or restores) one score model; returns its EMA params."""
    run, model = workdir / setting / STAGE, build_model(config)
    init = lambda: diffusion.init(model, jax.random.key(config.seed))  # noqa: E731
    template = jax.eval_shape(init)  # a restore compiles no random init
    tc, seed, loss = config.train, config.seed, diffusion.denoising_loss(model)
    adam = io.optimizer(tc.learning_rate, optimizer="adam", clip_norm=tc.clip_norm,
                        warmup_steps=tc.warmup_steps)  # fmt: skip
    optimizer = train.with_ema(adam, tc.ema_decay)
    images, val_images = sets["id_train"], sets["id_val"][: tc.eval_images]

    # The same t, ε and dequantisation at every evaluation.
    val_loss = train.held_out_loss(loss, val_images, jax.random.key(seed))
    return io.restore_or_fit(
        run, fingerprint(config, setting), template, init, loss,
        optimizer, train.epoch_batches(images, tc.batch_size, seed),
        config.settings[setting].steps, jax.random.key(seed),
        lambda p: {"val_loss": val_loss(p)}, select="final",
        description=f"{setting}/{STAGE}",
        export=lambda state: train.ema_params(state.opt_state),
        **configured.training(config),
    )  # fmt: skip


def train_models(config, workdir: Path):
    """Every setting's score model, trained or restored: ``(sets, {setting:
    params})``."""
    sets = {s: configured.load_setting(config, s) for s in config.settings}
    return sets, {s: train_model(config, workdir, s, sets[s]) for s in sets}


def score(config, workdir: Path, trained) -> dict:
    (sets, params), settings = trained, {}
    for setting in config.settings:
        scores = score_sets(config, workdir, setting, sets[setting], params[setting])
        summary = io.stage_summary(workdir / setting / STAGE)
        settings[setting] = summarise(config, scores, summary)
    return {"name": config.name, "model": config.model.to_dict(), "settings": settings}


def curve_t0s(sc) -> np.ndarray:
    return np.geomspace(sc.curve_t0_min, 1.0, sc.curve_points)


def score_sets(config, workdir: Path, setting: str, sets, params) -> dict:
    """Likelihood and FLIPD of every evaluation image; cached in ``scores.npz``.

    t0 of the detectors: the fixed ``config.score.flipd_t0s`` and the knee of the
    mean FLIPD-vs-t0 curve of the ID *validation* images (no OOD image decides it).
    """
    path = workdir / setting / "scores.npz"
    key_file = path.with_name("score_config.json")  # another config: recomputed
    compute = lambda: _scores(config, sets, params)  # noqa: E731
    return io.cached_arrays(path, key_file, config.score.to_dict(), compute)


def _scores(config, sets, params) -> dict:
    sc, model = config.score, build_model(config)
    key = jax.random.key(config.seed + 1)
    sets = {k: v for k, v in sets.items() if k != "id_train"}
    sets["id_val"] = sets["id_val"][: sc.val_images]
    grid = curve_t0s(sc).astype(np.float32)
    out = {"curve_t0s": grid}

    def likelihood(images, key, desc, **tight):  # the detectors' time and tolerance
        options = {
            "t_min": sc.likelihood_time,
            "tolerance": sc.ode_tolerance,
            "num_probes": sc.ode_probes,
            "batch_size": sc.batch_size,
        } | tight
        return diffusion.log_prob_images(model, params, images, key, desc=desc,
                                         **options)  # fmt: skip

    def flipd(images, t0s, key, desc, num_probes):
        return diffusion.flipd_images(model, params, images, t0s, key, desc=desc,
                                      num_probes=num_probes,
                                      batch_size=sc.batch_size)  # fmt: skip

    for i, (name, images) in enumerate(sets.items()):
        k = jax.random.fold_in(key, i)
        out[f"{name}/curve"] = flipd(
            images[: sc.curve_images], grid, k, f"{name} curve", 1
        )
    knee = float(grid[diffusion.knee(grid, out["id_val/curve"].mean(0))])
    t0s = np.array(sorted({*map(float, sc.flipd_t0s), knee}), np.float32)
    out["t0s"], out["t0_knee"] = t0s, np.float32(knee)
    for i, (name, images) in enumerate(sets.items()):
        k = jax.random.fold_in(key, 100 + i)
        out[f"{name}/log_p"], out[f"{name}/ode_steps"] = likelihood(
            images, k, f"{name} log p"
        )
        out[f"{name}/flipd"] = flipd(images, t0s, k, f"{name} FLIPD", sc.flipd_probes)
    # Bits/dim: at the model's t_min and the tight tolerance.
    reference = sets["id_test"][: sc.bpd_images]
    out["id_test/log_p_tight"], out["id_test/ode_steps_tight"] = likelihood(
        reference, key, "bits/dim", t_min=None, tolerance=sc.bpd_tolerance
    )
    return out


def _bpd(log_p: np.ndarray, num_dims: int) -> np.ndarray:
    return np.asarray(diffusion.bits_per_dim(jnp.asarray(log_p), num_dims))


def summarise(config, scores: dict, training: dict) -> dict:
    """Bits/dim, the FLIPD curves and every detector's AUROC with intervals."""
    sc, num_dims = config.score, build_model(config).config.num_dims
    sets = [k.removesuffix("/log_p") for k in scores if k.endswith("/log_p")]
    oods = [s for s in sets if s.startswith("ood/")]
    t0s = [float(t) for t in scores["t0s"]]
    knee = t0s.index(float(scores["t0_knee"]))
    results = {
        "training": training,
        "sizes": {s: len(scores[f"{s}/log_p"]) for s in sets},
        "bits_per_dim": {  # at the model's t_min and the tight tolerance
            "test": _mean_and_interval(_bpd(scores["id_test/log_p_tight"], num_dims)),
            "tolerance": sc.bpd_tolerance,
            "mean_ode_steps": float(np.mean(scores["id_test/ode_steps_tight"]))},
        "likelihood": {  # the detectors' log p_t
            "time": sc.likelihood_time, "tolerance": sc.ode_tolerance,
            "mean_ode_steps": float(np.mean(scores["id_test/ode_steps"])),
            "mean_nats_per_dim": {s: float(np.mean(scores[f"{s}/log_p"]) / num_dims)
                                  for s in sets}},
        "t0s": t0s, "t0_knee": t0s[knee], "flipd_probes": sc.flipd_probes,
        "curve_t0s": scores["curve_t0s"].tolist(),
        "curves": {s: scores[f"{s}/curve"].mean(0).tolist() for s in sets},
        "mean_flipd": {s: scores[f"{s}/flipd"].mean(0).tolist() for s in sets},
        "pairs": {},
    }  # fmt: skip
    log_p = {s: scores[f"{s}/log_p"] for s in sets}
    per_t0 = [  # the envelope's interval at the knee alone (it refits per resample)
        detectors.dual_threshold_pairs(
            log_p, {s: scores[f"{s}/flipd"][:, j] for s in sets}, oods,
            validation="id_val",
            envelope_ci_resamples=sc.envelope_resamples if j == knee else 0,
        )
        for j in range(len(t0s))
    ]  # fmt: skip
    keys = {"flipd_only": "lid_only", "rank_and": "rank_and", "envelope": "envelope",
            "envelope_reported": "envelope_reported"}  # fmt: skip
    for ood in oods:
        at = [pairs[ood] for pairs in per_t0]
        results["pairs"][ood.removeprefix("ood/")] = {
            "per_t0": {f"{t0:.4g}": {k: r[v] for k, v in keys.items()}
                       for t0, r in zip(t0s, at, strict=True)},
            "likelihood": at[0]["likelihood"],
            "envelope_ci": [at[knee][f"envelope_reported_ci_{e}"]
                            for e in ("low", "high")],
        }  # fmt: skip
    return results


def _mean_and_interval(values: np.ndarray) -> dict:
    """Mean with a 95 % normal interval, and the count."""
    half = 1.96 * np.std(values) / np.sqrt(len(values))
    return {"mean": float(np.mean(values)), "half_width": float(half), "n": len(values)}


def figures(config, workdir: Path, trained, results) -> dict:
    """Samples, the FLIPD-vs-t0 curves and a likelihood-vs-FLIPD scatter."""
    figures, model = {}, build_model(config)
    key, num = jax.random.key(config.seed + 2), config.report.num_samples
    for setting, s in results["settings"].items():
        samples = diffusion.sample_images(model, trained[1][setting], key, num)
        plots.image_grid(samples, workdir / f"samples_{setting}.png",
                         f"{setting}: probability-flow ODE samples")  # fmt: skip
        scores = dict(np.load(workdir / setting / "scores.npz"))
        knee, names = s["t0s"].index(s["t0_knee"]), list(s["curves"])
        label = {n: n.removeprefix("ood/") for n in names}
        plots.line_panels([
            {"series": {label[n]: (s["curve_t0s"], s["curves"][n]) for n in names},
             "xscale": "log", "xlabel": "t0", "ylabel": "mean FLIPD",
             "vline": s["t0_knee"]},
            {"series": {label[n]: (scores[f"{n}/log_p"], scores[f"{n}/flipd"][:, knee])
                        for n in names}, "scatter": True,
             "xlabel": "log p(y) [nats]", "ylabel": f"FLIPD, t0 = {s['t0_knee']:.3g}"},
        ], workdir / f"flipd_{setting}.png", width=5.5, height=4)  # fmt: skip
        figures[f"samples, {setting}"] = f"samples_{setting}.png"
        figures[f"FLIPD, {setting}"] = f"flipd_{setting}.png"
    return figures
