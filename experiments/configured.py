"""What the experiment configs name, resolved: folders relative to the repository,
the training cadence of ``config.train``, and the image sets of a setting.

The run directories themselves (fingerprints, restore-or-train, score caches,
atomic writes) are :mod:`jaxood.io`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxood import data, io
from jaxood.data import sources

ROOT = Path(__file__).resolve().parent.parent


def resolve(folder: str) -> Path:
    """A configured folder, relative to the repository (not the working directory)."""
    path = Path(folder)
    return path if path.is_absolute() else ROOT / path


def restore_sources(config) -> list[Path]:
    """The folders a config restores trained stages from (``config.checkpoints``,
    comma-separated: shipped checkpoints or other run directories, the first whose
    stage matches wins; none when empty)."""
    return [resolve(folder) for folder in config.checkpoints.split(",") if folder]


def train_stage(
    config,
    stage: Path,
    fingerprint: dict,
    template,
    init_fn,
    loss_fn,
    optimizer,
    batch_fn,
    steps: int,
    key,
    evaluate,
    final_metrics=None,
    **options,
):
    """One stage's params: finished in ``stage``, restored from
    ``config.checkpoints``, or trained now (resuming) at the periods of
    ``config.train``; see :func:`jaxood.io.train_or_restore` and
    :func:`jaxood.io.fit_stage` (``options``: ``select``, ``export``, ...).

    ``init_fn()`` gives the starting params; it runs only when the stage trains (a
    data-dependent init is a pass over images that a restore does not need). The
    summary gets ``final_metrics(params)`` (default ``evaluate``) of the kept params.
    """
    tc = config.train

    def train_fn():
        params, summary = io.fit_stage(
            stage, init_fn(), loss_fn, optimizer, batch_fn, steps, key, evaluate,
            eval_every=tc.eval_every, log_every=tc.log_every,
            checkpoint_every=tc.checkpoint_every, **options,
        )  # fmt: skip
        return params, summary | (final_metrics or evaluate)(params)

    sources = restore_sources(config) if "checkpoints" in config else []
    return io.train_or_restore(stage, fingerprint, template, train_fn, sources)


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
