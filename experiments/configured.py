"""What the experiment configs name, resolved: folders relative to the repository,
the training options of ``config.train``, and the image sets of a setting.

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


def training(config) -> dict:
    """The options of :func:`jaxood.io.restore_or_fit` that a config sets: the
    periods of ``config.train`` and the folders of ``config.checkpoints``."""
    periods = ("eval_every", "log_every", "checkpoint_every")
    folders = restore_sources(config) if "checkpoints" in config else []
    return {k: config.train[k] for k in periods} | {"sources": folders}


def fingerprint(config, setting: str, **parts) -> dict:
    """What determines the params of one model of a VAE or diffusion config trained
    on ``setting``: the seed, the validation split, the steps, ``config.train`` and
    the model's ``parts``."""
    return io.as_json({"setting": setting, "seed": config.seed,
                       "val_size": config.val_size, "train": config.train.to_dict(),
                       "steps": config.settings[setting].steps, **parts})  # fmt: skip


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
    return {"id_train": images[train_idx],
            "id_val": subset(images[val_idx], limit, seed),
            "id_test": subset(data.load(setting, s.test_split), limit, seed)} | {
        name: x if x.shape[1:3] == (size, size) else data.resize(x, size)
        for name, x in load_sets(s.ood, limit, seed).items()}  # fmt: skip
