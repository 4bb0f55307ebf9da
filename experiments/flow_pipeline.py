"""Train, score and summarise the flow experiments (Schirrmeister et al. 2020 setting).

Stages, each a sub-directory of the run directory with its own ``config.json``,
``metrics.jsonl``, checkpoints and ``final_params``:

1. ``general``: a Glow trained from scratch on the general image set.
2. ``id``: fine-tuned from the general model on the in-distribution training set
   (ActNorms keep their values, as in the reference code).
3. ``id_outlier``: the same fine-tuning plus the outlier loss against the frozen
   general model.
4. ``background`` (Ren et al. 2019): from scratch on mutated ID images, L2 λ.
5. ``ensemble_0`` … ``ensemble_{K-1}`` (WAIC): from scratch on the ID images, one
   seed each.

Stages 4 and 5 are the baseline models: trained when ``config.train_baseline_models``
(make reproduce), otherwise used only if a finished run directory or a shipped
checkpoint holds them.

A finished stage is never redone; an interrupted one resumes from its latest
checkpoint; a stage whose configuration matches a shipped checkpoint
(``config.checkpoints``) restores it instead of training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax
import ml_collections
import numpy as np

from experiments import flow_baselines
from experiments.run_dir import (
    best_params,
    check_fingerprint,
    subset,
    train_seconds,
    write_json,
)
from jaxood import checkpoint, data, detectors, flows, metrics, train
from jaxood.data import builders, sources
from jaxood.flows.losses import nll_loss, outlier_loss
from jaxood.flows.scoring import log_prob_images

STAGES = ("general", "id", "id_outlier")
BASELINE_STAGES = ("background", "ensemble")  # "ensemble" = ensemble_0, ensemble_1, …
DETECTORS = {
    "likelihood": "−log p(x) of the ID model",
    "final_scale": "−lp₂(x): final (4×4) scale of the ID model",
    "llr": "log p_general(x) − log p_ID(x)",
    "llr_outlier": "log p_general(x) − log p_ID+outlier(x)",
}


def build_model(config: ml_collections.ConfigDict) -> flows.Glow:
    size = config.data.image_size
    return flows.Glow(flows.GlowConfig(image_shape=(size, size, 1), **config.model))


def _prepare_images(images: np.ndarray, size: int) -> np.ndarray:
    return images if images.shape[1] == size else data.resize(images, size)


def load_sets(config: ml_collections.ConfigDict) -> dict[str, np.ndarray]:
    """uint8 images at the model size: training/validation/test and every OOD set."""
    size, seed = config.data.image_size, config.seed
    images, labels = data.load(config.data.id_dataset, "train", with_labels=True)
    train_idx, val_idx = sources.stratified_split(
        labels, config.data.val_size / len(labels), seed
    )
    sets = {
        "id_train": images[train_idx],
        "id_val": images[val_idx],
        "id_test": subset(
            data.load(config.data.id_dataset, "test"), config.data.max_eval, seed
        ),
        "general_train": data.load(config.data.general_dataset, "train"),
        "general_val": subset(
            data.load(config.data.general_dataset, "test"),
            config.data.general_val_size,
            seed,
        ),
    }
    for entry in config.data.ood:
        name, split = entry.split(":")
        sets[f"ood/{name}"] = subset(data.load(name, split), config.data.max_eval, seed)
    return {k: _prepare_images(v, size) for k, v in sets.items()}


def _fingerprint(config: ml_collections.ConfigDict, stage: str) -> dict:
    """What determines a stage's trained params, as it reads back from JSON."""
    data_keys = ("id_dataset", "general_dataset", "image_size", "val_size")
    if stage == "general":  # independent of the ID data: shared across ID sets
        data_keys = ("general_dataset", "image_size", "general_val_size")
    fingerprint = {
        "stage": stage,
        "seed": config.seed,
        "data": {k: config.data[k] for k in data_keys},
        "model": config.model.to_dict(),
        "train": config.train.to_dict(),
    }
    if stage == "general":
        fingerprint["general_steps"] = config.stages.general_steps
    elif stage in STAGES:
        fingerprint["stages"] = config.stages.to_dict()
    elif stage == "background":
        fingerprint["background"] = config.background.to_dict()
    else:  # an ensemble member: the ensemble size does not change its params
        fingerprint["ensemble_steps"] = config.ensemble.steps
    return json.loads(json.dumps(fingerprint))  # tuples become lists, as on disk


def _stage_index(stage: str) -> int:
    """A distinct integer per stage, folded into the training key."""
    if stage in STAGES:
        return STAGES.index(stage)
    if stage == "background":
        return len(STAGES)
    return 100 + int(stage.removeprefix("ensemble_"))


def _shipped(config, stage: str) -> Path | None:
    if not config.checkpoints:
        return None
    folder = Path(config.checkpoints)
    if not folder.is_absolute():  # relative to the repository, not the cwd
        folder = Path(__file__).resolve().parent.parent / folder
    folder = folder / stage
    info = folder / "config.json"
    if not info.is_file():
        return None
    if json.loads(info.read_text()) != _fingerprint(config, stage):
        print(f"[{stage}] {folder} holds another configuration: training instead.")
        return None
    return folder


def _val_fn(model, images):
    def evaluate(params):
        total = log_prob_images(model, params, images, desc="validation")["total"]
        nll = float(-np.mean(total))
        return {
            "val_loss": nll,
            "val_bpd": float(data.bits_per_dim(nll, model.config.num_dims)),
        }

    return evaluate


def train_stage(
    config,
    workdir: Path,
    stage: str,
    model,
    sets,
    init_params,
    loss_fn,
    batch_fn,
    steps,
    select="best",
    weight_decay=None,
):
    """Trains (or resumes, or restores) one stage; returns its params.

    ``select`` picks the validation-best state (``"best"``) or the last one
    (``"final"``, as the reference does for the outlier-loss model, whose validation
    NLL ignores the outlier term). ``weight_decay`` overrides
    ``config.train.weight_decay`` (the background model's L2 λ).
    """
    stage_dir = workdir / stage
    final = stage_dir / "final_params"
    restored_marker = stage_dir / "restored_from"
    fingerprint = _fingerprint(config, stage)
    if final.is_dir():
        check_fingerprint(stage_dir, fingerprint)
        if not (restored_marker.exists() and not config.checkpoints):
            return checkpoint.load_params(final, init_params)
        # Restored from a shipped checkpoint, but shipped ones are now disabled
        # (make reproduce): replace the copy by a real training run.
        print(f"[{stage}] was restored from a shipped checkpoint: training it now.")
        shutil.rmtree(final)
        restored_marker.unlink()
    shipped = _shipped(config, stage)
    if shipped is not None:
        print(f"[{stage}] restoring the shipped checkpoint {shipped}")
        # A shipped folder holds params/; a finished run directory final_params/.
        source = shipped / "params"
        if not source.is_dir():
            source = shipped / "final_params"
        params = checkpoint.load_params(source, init_params)
        stage_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped / "summary.json", stage_dir / "summary.json")
        write_json(stage_dir / "config.json", fingerprint)
        restored_marker.write_text(str(shipped) + "\n")
        checkpoint.save_params(final, params)
        return params
    write_json(stage_dir / "config.json", fingerprint)
    tc = config.train
    optimizer = train.make_optimizer(
        tc.learning_rate,
        optimizer=tc.optimizer,
        warmup_steps=tc.warmup_steps,
        clip_norm=tc.clip_norm,
        weight_decay=tc.weight_decay if weight_decay is None else weight_decay,
    )
    val_images = sets["general_val" if stage == "general" else "id_val"][
        : tc.eval_images
    ]
    state = train.fit(
        workdir=stage_dir,
        state=train.init_state(init_params, optimizer),
        train_step=train.make_train_step(loss_fn, optimizer),
        batch_fn=batch_fn,
        num_steps=steps,
        key=jax.random.fold_in(jax.random.key(config.seed), _stage_index(stage)),
        eval_fn=_val_fn(model, val_images),
        eval_every=tc.eval_every,
        log_every=tc.log_every,
        checkpoint_every=tc.checkpoint_every,
        progress_metric=lambda r: {k: r[k] for k in ("bpd", "val_bpd") if k in r},
        description=stage,
    )
    params, chosen_step = state.params, steps
    if select == "best":
        params, chosen_step = best_params(stage_dir, state)
    summary = {
        "steps": steps,
        "selected": select,
        "selected_step": chosen_step,
        "num_skipped": int(state.num_skipped),
        "train_seconds": train_seconds(stage_dir),
        **_val_fn(model, val_images)(params),
    }
    write_json(stage_dir / "summary.json", summary)
    checkpoint.save_params(final, params)
    return params


def train_all(config, workdir: Path, sets) -> dict:
    """Runs the three stages in order; returns their params."""
    model = build_model(config)
    tc, sc = config.train, config.stages
    general_images = sets["general_train"]
    id_images = sets["id_train"]

    def batches(images, seed):
        return lambda step: images[
            train.epoch_batch_indices(len(images), tc.batch_size, step, seed)
        ]

    init_images = data.dequantize(
        jax.random.key(config.seed), general_images[: tc.init_images]
    )
    params = {}
    params["general"] = train_stage(
        config, workdir, "general", model, sets,
        flows.init(model, jax.random.key(config.seed), init_images),
        nll_loss(model), batches(general_images, config.seed), sc.general_steps,
    )  # fmt: skip
    params["id"] = train_stage(
        config, workdir, "id", model, sets, params["general"],
        nll_loss(model), batches(id_images, config.seed + 1), sc.id_steps,
    )  # fmt: skip
    inliers = batches(id_images, config.seed + 2)
    outliers = batches(general_images, config.seed + 3)
    general = params["general"]
    loss = outlier_loss(
        model, weight=sc.outlier_weight, temperature=sc.outlier_temperature
    )
    params["id_outlier"] = train_stage(
        config, workdir, "id_outlier", model, sets, params["general"],
        loss, lambda step: (inliers(step), outliers(step), general), sc.outlier_steps,
        select="final",
    )  # fmt: skip
    params.update(_train_baseline_models(config, workdir, sets, model, batches))
    return params


def _finished(config, workdir: Path, stage: str) -> bool:
    return (workdir / stage / "final_params").is_dir() and json.loads(
        (workdir / stage / "config.json").read_text()
    ) == _fingerprint(config, stage)


def _train_baseline_models(config, workdir: Path, sets, model, batches) -> dict:
    """Ren et al.'s background Glow and the WAIC ensemble: trained when
    ``config.train_baseline_models``, else only the finished or shipped ones are
    loaded."""
    id_images = sets["id_train"]
    init_count = config.train.init_images
    bc, ec = config.background, config.ensemble
    wanted = ["background"] + [f"ensemble_{k}" for k in range(ec.size)]
    params = {}
    for stage in wanted:
        if not (
            config.train_baseline_models
            or _finished(config, workdir, stage)
            or _shipped(config, stage)
        ):
            continue
        index = _stage_index(stage)
        init_key, data_key = jax.random.split(jax.random.key(config.seed + index))
        init_images = id_images[:init_count]
        if stage == "background":
            init_images = data.mutate(data_key, init_images, bc.mutation_rate)
            extra = dict(
                loss_fn=nll_loss(model, mutation_rate=bc.mutation_rate),
                steps=bc.steps,
                select="final",  # clean-ID validation NLL is not its objective
                weight_decay=bc.l2_weight,
            )
        else:
            extra = dict(loss_fn=nll_loss(model), steps=ec.steps)
        params[stage] = train_stage(
            config, workdir, stage, model, sets,
            flows.init(model, init_key, data.dequantize(data_key, init_images)),
            batch_fn=batches(id_images, config.seed + index), **extra,
        )  # fmt: skip
    return params


def _training_summary(stage_dir: Path) -> dict:
    """summary.json of a stage, plus ``restored_from`` (the shipped checkpoint folder)
    when the stage was restored rather than trained in this run directory."""
    summary = json.loads((stage_dir / "summary.json").read_text())
    marker = stage_dir / "restored_from"
    if marker.exists():
        summary["restored_from"] = marker.read_text().strip()
    return summary


def _score_key(config, workdir: Path, stages) -> dict:
    """What the scores depend on: the config (less what only steers training) and
    the summary of every stage scored."""
    settings = config.to_dict()
    for key in ("command", "checkpoints", "train_baseline_models"):
        settings.pop(key, None)
    summaries = {
        stage: json.loads((workdir / stage / "summary.json").read_text())
        for stage in stages
    }
    return json.loads(json.dumps({"config": settings, "stages": summaries}))


def score_all(config, workdir: Path, sets, params) -> dict:
    """Scores every evaluation set with every detector whose models are there; writes
    scores.npz and results.json; returns the results.

    Reuses the files of an earlier call while the config and the scored stages are
    unchanged (``score_key.json``), so a restarted reproduction does not score twice.
    """
    key_file, results_file = workdir / "score_key.json", workdir / "results.json"
    score_key = _score_key(config, workdir, params)
    if (
        key_file.exists()
        and results_file.exists()
        and (workdir / "scores.npz").exists()
        and json.loads(key_file.read_text()) == score_key
    ):
        print(f"Scores of {workdir} are up to date: reusing them.")
        return json.loads(results_file.read_text())
    model = build_model(config)
    num_dims = model.config.num_dims
    eval_sets = ["id_test"] + [k for k in sets if k.startswith("ood/")]
    stages = list(params)
    log_probs = {
        stage: {
            name: log_prob_images(
                model,
                params[stage],
                sets[name],
                desc=f"{stage} {name}",
                with_latents=stage == "id",
            )
            for name in eval_sets
        }
        for stage in stages
    }
    typicality_fit = subset(
        sets["id_train"], config.scoring.typicality_train_images, config.seed
    )
    entropy = float(
        -np.mean(log_prob_images(model, params["id"], typicality_fit)["total"])
    )
    nll_val = -log_prob_images(model, params["id"], sets["id_val"])["total"]
    scores = {}
    for name in eval_sets:
        lp_gen = log_probs["general"][name]
        lp_id = log_probs["id"][name]
        lp_out = log_probs["id_outlier"][name]
        scores[name] = {
            "likelihood": np.asarray(detectors.negative_log_likelihood(lp_id["total"])),
            "final_scale": np.asarray(detectors.final_scale(lp_id["per_scale"])),
            "llr": np.asarray(
                detectors.likelihood_ratio(lp_id["total"], lp_gen["total"])
            ),
            "llr_outlier": np.asarray(
                detectors.likelihood_ratio(lp_out["total"], lp_gen["total"])
            ),
        }
    baseline_scores, baseline_descriptions = flow_baselines.pointwise_scores(
        config, log_probs, {n: sets[n] for n in eval_sets}, entropy, num_dims
    )
    for name in eval_sets:
        scores[name].update(baseline_scores[name])
    descriptions = {**DETECTORS, **baseline_descriptions}
    groups = flow_baselines.group_results(config, log_probs["id"], entropy, nll_val)

    arrays = {f"{n}/{d}": v for n, s in scores.items() for d, v in s.items()}
    arrays.update(
        {
            f"{n}/log_p_{st}": log_probs[st][n]["total"]
            for st in stages
            for n in eval_sets
        }
    )
    arrays.update(
        {f"{n}/per_scale_id": log_probs["id"][n]["per_scale"] for n in eval_sets}
    )
    np.savez_compressed(workdir / "scores.npz", **arrays)

    results = {
        "name": config.name,
        "command": config.command,
        "config": config.to_dict(),
        "general_data": "general_photos: " + builders.GeneralPhotos.DESCRIPTION,
        "detectors": descriptions,
        "bpd": {
            stage: {
                name: float(
                    np.mean(
                        data.bits_per_dim(-log_probs[stage][name]["total"], num_dims)
                    )
                )
                for name in eval_sets
            }
            for stage in stages
        },
        "training": {stage: _training_summary(workdir / stage) for stage in stages},
        "typicality_entropy_nats": entropy,
        "metrics": {},
        "groups": groups,
    }
    for detector in descriptions:
        results["metrics"][detector] = {
            name.removeprefix("ood/"): metrics.summary(
                scores["id_test"][detector], scores[name][detector],
                nonfinite="most_anomalous", ci_resamples=200, seed=config.seed,
            )
            for name in eval_sets if name != "id_test"
        }  # fmt: skip
    write_json(results_file, results)
    write_json(key_file, score_key)
    return results
