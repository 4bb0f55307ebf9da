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

from experiments import run_dir, vae_pipeline
from jaxood import diffusion, train

STAGE = "score_model"


def build_model(config) -> diffusion.ScoreModel:
    return diffusion.ScoreModel(diffusion.DiffusionConfig(**config.model.to_dict()))


def fingerprint(config, setting: str) -> dict:
    """What determines one diffusion model's trained params."""
    return run_dir.as_json(
        {
            "setting": setting,
            "seed": config.seed,
            "val_size": config.val_size,
            "steps": config.settings[setting].steps,
            "model": config.model.to_dict(),
            "train": config.train.to_dict(),
        }
    )


def train_model(config, workdir: Path, setting: str, sets) -> dict:
    """Trains (or resumes, or restores) one score model; returns its EMA params."""
    run, model = workdir / setting / STAGE, build_model(config)
    template = diffusion.init(model, jax.random.key(config.seed))
    tc, seed = config.train, config.seed
    loss = diffusion.denoising_loss(model)
    optimizer = train.with_ema(
        run_dir.optimizer(
            tc.learning_rate,
            optimizer="adam",
            warmup_steps=tc.warmup_steps,
            clip_norm=tc.clip_norm,
        ),
        tc.ema_decay,
    )
    images, val_images = sets["id_train"], sets["id_val"][: tc.eval_images]

    def batch_fn(step):
        return images[train.epoch_batch_indices(len(images), tc.batch_size, step, seed)]

    @jax.jit
    def val_loss(params):  # the same t, ε and dequantisation at every evaluation
        return loss(params, val_images, jax.random.key(seed))[0]

    def train_fn():
        return run_dir.fit(
            run,
            template,
            loss,
            optimizer,
            batch_fn,
            config.settings[setting].steps,
            jax.random.key(seed),
            lambda p: {"val_loss": float(val_loss(p))},
            tc,
            select="final",
            description=f"{setting}/{STAGE}",
            export=lambda state: train.ema_params(state.opt_state),
        )

    return run_dir.train_or_restore(
        run, fingerprint(config, setting), template, train_fn, [config.checkpoints]
    )


def run(config, workdir: Path, mode: str, command: str) -> None:
    """``train`` | ``score`` | ``report`` | ``all``, every setting."""
    if mode == "lid":
        raise SystemExit("--mode lid: FLIPD is part of --mode score here.")
    params, sets = {}, {}
    for setting in config.settings:
        sets[setting] = vae_pipeline.load_sets(config, setting)
        params[setting] = train_model(config, workdir, setting, sets[setting])
    if mode == "train":
        return
    raise NotImplementedError("scoring: next commit")
