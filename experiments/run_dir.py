"""What every experiment pipeline does with a run directory: atomic JSON, the
configuration fingerprint guard, the validation-best params, the training time, and
fixed evaluation subsets."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import checkpoint, train


def write_json(path: Path, obj) -> None:
    """Writes ``obj`` as JSON through a temporary file: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def check_fingerprint(run: Path, fingerprint: dict) -> None:
    """Refuses to reuse ``run`` when its ``config.json`` records another config."""
    if json.loads((run / "config.json").read_text()) != fingerprint:
        raise RuntimeError(
            f"{run} was trained with another configuration. Use another "
            "--workdir, or delete that directory to train again."
        )


def best_params(run: Path, state: train.TrainState):
    """``(params, step)`` of the validation-best checkpoint of a finished run."""
    checkpoints = checkpoint.RunCheckpoints(run / "checkpoints")
    try:
        best = train.TrainState(*checkpoints.restore_best(state))
        return jax.tree.map(jnp.asarray, best.params), checkpoints.best.best_step()
    finally:
        checkpoints.close()


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
