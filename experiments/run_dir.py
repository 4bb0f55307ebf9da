"""The run-directory layer shared by every pipeline.

A *stage* is one trained model in its own sub-directory: ``config.json`` (the
fingerprint: what determines its params), ``metrics.jsonl`` and checkpoints while it
trains, then ``final_params`` and ``summary.json``. :func:`train_or_restore` never
trains a finished stage twice, resumes an interrupted one, refuses a directory made
with another configuration, and restores a stage from another folder (shipped
checkpoints, another run) whose fingerprint matches. Scores are cached next to the
key they were computed for (:func:`is_cached` / :func:`mark_cached`). Every file is
written through a temporary file, so nothing half-written is left behind.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import checkpoint, data, parallel, train
from jaxood.data import sources

ROOT = Path(__file__).resolve().parent.parent
RESTORED_MARKER = "restored_from"

# Stages that share a loss function and optimizer settings (the flow pipeline's
# general, ID and ensemble models) share one jitted train step: it is compiled once
# per process, not once per stage (about 10 s each on 2 cores for the smoke Glow).
optimizer = functools.lru_cache(maxsize=16)(train.make_optimizer)
_train_step = functools.lru_cache(maxsize=16)(train.make_train_step)


def as_json(obj):
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def write_json(path: Path, obj) -> None:
    """Writes ``obj`` as JSON through a temporary file: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` through a temporary file."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def is_cached(key_file: Path, key: dict, outputs: Sequence[Path]) -> bool:
    """True when ``outputs`` exist and were computed for ``key`` (JSON-equal)."""
    return (
        key_file.exists()
        and all(p.exists() for p in outputs)
        and json.loads(key_file.read_text()) == as_json(key)
    )


def mark_cached(key_file: Path, key: dict) -> None:
    """Records that the outputs next to ``key_file`` belong to ``key`` (last)."""
    write_json(key_file, key)


def check_fingerprint(run: Path, fingerprint: dict) -> None:
    """Refuses to reuse ``run`` when its ``config.json`` records another config."""
    if json.loads((run / "config.json").read_text()) != as_json(fingerprint):
        raise RuntimeError(
            f"{run} was trained with another configuration. Use another "
            "--workdir, or delete that directory to train again."
        )


def resolve(folder: str) -> Path:
    """A configured folder, relative to the repository (not the working dir)."""
    path = Path(folder)
    return path if path.is_absolute() else ROOT / path


def find_source(sources: Sequence[str], stage: str, fingerprint: dict) -> Path | None:
    """The first ``source/stage`` folder trained with ``fingerprint``, if any."""
    for source in filter(None, sources):
        folder = resolve(source) / stage
        info = folder / "config.json"
        if not info.is_file():
            continue
        if json.loads(info.read_text()) == as_json(fingerprint):
            return folder
        print(f"[{stage}] {folder} holds another configuration: not restored.")
    return None


def is_available(run: Path, fingerprint: dict, sources: Sequence[str]) -> bool:
    """Whether :func:`train_or_restore` would find the stage instead of training:
    finished in ``run`` with this fingerprint, or restorable from ``sources``."""
    finished = (run / "final_params").is_dir() and (run / "config.json").exists()
    if finished and json.loads((run / "config.json").read_text()) == as_json(
        fingerprint
    ):
        return True
    return find_source(sources, run.name, fingerprint) is not None


def train_or_restore(
    run: Path,
    fingerprint: dict,
    template,
    train_fn: Callable[[], tuple[object, dict]],
    sources: Sequence[str] = (),
):
    """The params of one stage: finished here, restored, or trained now.

    Args:
        run: the stage directory.
        fingerprint: JSON-able description of everything that determines the params.
        template: a params pytree of the right structure (for restoring).
        train_fn: trains in ``run`` (resuming) and returns ``(params, summary)``.
        sources: folders (shipped checkpoints ``<stage>/params``, or run
            directories ``<stage>/final_params``) to restore a matching stage from.
            A stage restored earlier is trained for real once ``sources`` is empty.

    Returns:
        The params: numpy leaves, or replicated over the mesh set with
        ``jax.set_mesh`` (the entry point sets one).
    """
    mesh = parallel.current_mesh()
    placed = (
        (lambda p: p) if mesh is None else functools.partial(parallel.replicate, mesh)
    )
    final, marker = run / "final_params", run / RESTORED_MARKER
    if final.is_dir():
        check_fingerprint(run, fingerprint)
        if not (marker.exists() and not any(sources)):
            return placed(checkpoint.load_params(final, template))
        print(f"[{run.name}] was restored from {marker.read_text().strip()}: training.")
        shutil.rmtree(final)
        marker.unlink()
    source = find_source(sources, run.name, fingerprint)
    if source is not None:
        print(f"[{run.name}] restoring {source}")
        params_dir = source / "params"
        params = checkpoint.load_params(
            params_dir if params_dir.is_dir() else source / "final_params", template
        )
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "summary.json", run / "summary.json")
        if (source / "snapshots").is_dir():  # params at earlier steps, if shipped
            shutil.rmtree(run / "snapshots", ignore_errors=True)
            shutil.copytree(source / "snapshots", run / "snapshots")
        write_json(run / "config.json", fingerprint)
        marker.write_text(str(source) + "\n")
    else:
        write_json(run / "config.json", fingerprint)
        params, summary = train_fn()
        write_json(run / "summary.json", summary)
    checkpoint.save_params(final, params)
    return placed(params)


def snapshots(run: Path) -> list[int]:
    """The steps of a stage's params snapshots (``<stage>/snapshots/<step>``)."""
    folder = run / "snapshots"
    steps = (
        [p.name for p in folder.iterdir() if p.name.isdigit()]
        if folder.is_dir()
        else []
    )
    return sorted(map(int, steps))


def stage_summary(run: Path) -> dict:
    """``summary.json`` of a finished stage, plus ``restored_from`` (the folder,
    relative to the repository when inside it) if it was restored, not trained."""
    summary = json.loads((run / "summary.json").read_text())
    marker = run / RESTORED_MARKER
    if marker.exists():
        source = Path(marker.read_text().strip())
        inside = source.is_relative_to(ROOT)
        summary["restored_from"] = str(source.relative_to(ROOT) if inside else source)
    return summary


def fit(
    run: Path,
    init_params,
    loss_fn,
    optimizer,
    batch_fn,
    num_steps: int,
    key,
    eval_fn,
    train_config,
    *,
    select: str = "best",
    description: str = "",
    export: Callable[[train.TrainState], object] = lambda state: state.params,
    snapshot_steps: Sequence[int] = (),
) -> tuple[object, dict]:
    """``train.fit`` with the config's logging cadence; ``(params, summary)``.

    ``select`` picks the validation-best state (``"best"``) or the last one
    (``"final"``); ``export`` reads the params to keep from it (the diffusion
    models keep their parameter average, ``train.ema_params(state.opt_state)``);
    ``snapshot_steps``: ``train.fit``'s params saved along the way.
    The summary has the steps, the selected step, the skipped steps and the
    training time read from ``metrics.jsonl``.
    """
    tc = train_config
    state = train.fit(
        workdir=run,
        state=train.init_state(init_params, optimizer),
        train_step=_train_step(loss_fn, optimizer, mesh=parallel.current_mesh()),
        batch_fn=batch_fn,
        num_steps=num_steps,
        key=key,
        eval_fn=eval_fn,
        eval_every=tc.eval_every,
        log_every=tc.log_every,
        checkpoint_every=tc.checkpoint_every,
        progress_metric=lambda r: {
            k: r[k] for k in ("loss", "bpd", "val_loss", "val_bpd") if k in r
        },
        description=description or run.name,
        snapshot_steps=tuple(snapshot_steps),
    )
    params, step = export(state), num_steps
    if select == "best":
        checkpoints = checkpoint.RunCheckpoints(run / "checkpoints")
        try:
            best = train.TrainState(*checkpoints.restore_best(state))
            params, step = export(best), checkpoints.best_step()
        finally:
            checkpoints.close()
    params = jax.tree.map(jnp.asarray, params)
    summary = {
        "steps": num_steps,
        "selected": select,
        "selected_step": step,
        "num_skipped": int(state.num_skipped),
        "train_seconds": train_seconds(run),
    }
    return params, summary


def train_seconds(run: Path) -> float:
    """Training time from ``metrics.jsonl`` (seconds per step × steps logged)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0.0
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    total, previous = 0.0, 0
    for r in records:
        total += r["seconds_per_step"] * (r["step"] - previous)
        previous = r["step"]
    return total


def subset(images: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A fixed random subset of at most ``limit`` images, in their original order."""
    if len(images) <= limit:
        return images
    index = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    return images[index]


def load_sets(entries: Sequence[str], limit: int, seed: int, prefix: str = "ood/"):
    """``{"ood/<name>": images}`` of ``"name:split"`` entries, fixed subsets."""
    out = {}
    for entry in entries:
        name, split = entry.split(":")
        out[prefix + name] = subset(data.load(name, split), limit, seed)
    return out


def split_indices(config, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into the ID training split (stratified,
    ``config.val_size`` a fraction; the VAE and diffusion configs)."""
    return sources.stratified_split(labels, config.val_size, config.seed)


def load_setting(config, setting: str) -> dict[str, np.ndarray]:
    """uint8 sets of one in-distribution setting of a VAE or diffusion config
    (``config.settings[setting]``): id_train, id_val, id_test and ``ood/<name>``
    at the ID images' size (OOD images of another size are centre-cropped and
    resized)."""
    s, seed, limit = config.settings[setting], config.seed, config.score.max_eval
    images, labels = data.load(setting, s.train_split, with_labels=True)
    train_idx, val_idx = split_indices(config, labels)
    size = images.shape[1]
    ood = {
        name: x if x.shape[1:3] == (size, size) else data.resize(x, size)
        for name, x in load_sets(s.ood, limit, seed).items()
    }
    return {
        "id_train": images[train_idx],
        "id_val": subset(images[val_idx], limit, seed),
        "id_test": subset(data.load(setting, s.test_split), limit, seed),
        **ood,
    }
