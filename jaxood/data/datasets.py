"""``load(name, split)``: every dataset through ``tfds.data_source``, cached as .npy.

Offline datasets (``fashion_mnist``, ``mnist_5k``, ``animal_mnist``, ``digits``) are
prepared on first use by :func:`jaxood.data.prepare`; any other tfds name (``mnist``,
``cifar10``, ``svhn_cropped``, ``celeb_a``, ...) goes through the same call and needs
TensorFlow plus internet the first time (tfds prepares built-in datasets with TF).
Synthetic OOD sets (``uniform_noise``, ``constant``, ``fashion_mnist_vflip``,
``fashion_mnist_inverted``) have a single ``test`` split of 10,000 images.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from jaxood.data import synthetic
from jaxood.data.builders import OFFLINE_BUILDERS
from jaxood.data.errors import DataError, UnknownDatasetError, UnknownSplitError
from jaxood.data.preparation import default_data_dir, is_prepared, prepare

SYNTHETIC_SIZE = 10_000
SYNTHETIC: dict[str, Callable[[Path], np.ndarray]] = {
    "uniform_noise": lambda _: synthetic.uniform_noise(SYNTHETIC_SIZE, seed=0),
    "constant": lambda _: synthetic.constant(SYNTHETIC_SIZE, seed=0),
    "fashion_mnist_vflip": lambda d: synthetic.vertical_flip(
        load("fashion_mnist", "test", data_dir=d)
    ),
    "fashion_mnist_inverted": lambda d: synthetic.invert(
        load("fashion_mnist", "test", data_dir=d)
    ),
}
ALL_SPLIT = "all"


def available() -> list[str]:
    """Names that load offline: prepared builders and synthetic sets."""
    return sorted([*OFFLINE_BUILDERS, *SYNTHETIC])


def _validate_split(name: str, split: str, splits: list[str]) -> str:
    if split == ALL_SPLIT:
        return "+".join(splits)
    if split not in splits:
        raise UnknownSplitError(
            f"Dataset {name!r} has no split {split!r}. Known splits: "
            f"{', '.join([*splits, ALL_SPLIT])}."
        )
    return split


def _builder(name: str, data_dir: Path) -> tfds.core.DatasetBuilder:
    try:
        return tfds.builder(name, data_dir=str(data_dir))
    except tfds.core.registered.DatasetNotFoundError as err:
        raise UnknownDatasetError(
            f"Unknown dataset {name!r}. Offline: {', '.join(available())}. Online "
            "(needs TensorFlow + internet once): any tfds name, e.g. mnist, cifar10, "
            "svhn_cropped, celeb_a."
        ) from err


def _tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _data_source(name: str, tfds_split: str, data_dir: Path):
    if name in OFFLINE_BUILDERS:
        return tfds.data_source(name, split=tfds_split, data_dir=str(data_dir))
    # tfds prepares its built-in datasets through TensorFlow; without it, only data
    # that is already prepared (or mocked in tests) can be read.
    online = _tensorflow_available()
    try:
        return tfds.data_source(
            name, split=tfds_split, data_dir=str(data_dir), download=online
        )
    except Exception as err:
        if online:
            raise
        raise DataError(
            f"{name!r} is not prepared in {data_dir} and tfds needs TensorFlow "
            "(and internet) to prepare built-in datasets. Fix: "
            "`pip install -r requirements-accelerators.txt` (TensorFlow), or copy a "
            "prepared "
            f"{name}/ folder (array_record format) into the data directory. "
            f"Offline sets: {', '.join(available())}."
        ) from err


def _read(name: str, tfds_split: str, data_dir: Path) -> dict[str, np.ndarray]:
    source = _data_source(name, tfds_split, data_dir)
    images, labels = [], []
    for example in tqdm(
        source, desc=f"decode {name}/{tfds_split}", leave=False, disable=None
    ):
        images.append(example["image"])
        labels.append(example.get("label", -1))
    if not images:
        raise DataError(f"{name}/{tfds_split} is empty.")
    return {
        "images": np.stack(images).astype(np.uint8),
        "labels": np.asarray(labels, np.int64),
    }


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check_data_dir(data_dir: Path) -> Path:
    """Refuses a data directory that is a file (before tfds fails obscurely)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(
            f"data_dir {data_dir} is a file, not a directory. Pass a directory "
            "(or set JAXOOD_DATA_DIR to one); it is created if missing."
        )
    return data_dir


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in ("images", "labels"):
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _expected_count(builder, tfds_split: str) -> int | None:
    try:
        return int(builder.info.splits[tfds_split].num_examples) or None
    except Exception:  # unknown split info (online datasets not yet prepared)
        return None


def _cache_problem(
    arrays: dict[str, np.ndarray], manifest: dict | None, expected: int | None
) -> str | None:
    """Why cached arrays cannot be trusted, or None."""
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        return f"images are {images.dtype} {images.shape}, not uint8 (N, H, W[, C])"
    if labels.ndim != 1 or len(labels) != len(images):
        return f"{len(images)} images but labels of shape {labels.shape}"
    if expected is not None and len(images) != expected:
        return f"{len(images)} examples, the dataset's split has {expected}"
    if manifest is not None:
        if manifest.get("num_examples") != len(images):
            return (
                f"{len(images)} examples, the manifest says "
                f"{manifest.get('num_examples')}"
            )
        if manifest.get("sha256") != _digest(arrays):
            return "the SHA-256 of the arrays differs from the manifest"
    return None


def _read_cache(paths: dict[str, Path], expected: int | None):
    """(arrays, None) if the cache verifies, else (None, reason)."""
    try:
        arrays = {
            k: np.load(paths[k], allow_pickle=False) for k in ("images", "labels")
        }
        manifest = (
            json.loads(paths["manifest"].read_text())
            if paths["manifest"].is_file()
            else None
        )
    except (OSError, ValueError, EOFError) as err:  # truncated or foreign files
        return None, f"unreadable ({type(err).__name__}: {err})"
    problem = _cache_problem(arrays, manifest, expected)
    if problem is None and manifest is None:
        # A cache from before manifests: shapes and count verified, adopt it.
        _write_manifest(paths["manifest"], arrays)
    return (arrays, None) if problem is None else (None, problem)


def _write_manifest(path: Path, arrays: dict[str, np.ndarray]) -> None:
    text = json.dumps(
        {
            "num_examples": len(arrays["images"]),
            "image_shape": list(arrays["images"].shape[1:]),
            "sha256": _digest(arrays),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load(
    name: str,
    split: str,
    *,
    data_dir: str | Path | None = None,
    with_labels: bool = False,
    cache: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Loads a whole split as uint8 images ``(N, H, W, C)`` (and labels).

    Args:
        name: an offline name (see :func:`available`) or any tfds dataset name.
        split: ``train``, ``test`` (or the dataset's own split names), or ``all``.
        data_dir: tfds data directory; default ``$JAXOOD_DATA_DIR`` or
            ``~/.cache/jaxood/datasets``.
        with_labels: also return int64 labels ``(N,)`` (-1 where there are none).
        cache: read/write ``data_dir/jaxood_cache/<name>/<version>/<split>.npy``.

    Returns:
        ``images`` or ``(images, labels)``.

    Raises:
        UnknownDatasetError, UnknownSplitError, SourceMissingError: with the fix.
    """
    data_dir = check_data_dir(
        Path(data_dir) if data_dir is not None else default_data_dir()
    )
    if not isinstance(name, str) or not isinstance(split, str):
        raise TypeError(f"name and split must be strings, got {name!r} and {split!r}.")
    if name in SYNTHETIC:
        _validate_split(name, split, ["test"])
        images = SYNTHETIC[name](data_dir)
        labels = np.full(len(images), -1, np.int64)
        return (images, labels) if with_labels else images

    if name in OFFLINE_BUILDERS and not is_prepared(name, data_dir):
        prepare([name], data_dir=data_dir)
    builder = _builder(name, data_dir)
    known = list(builder.info.splits.keys())
    tfds_split = _validate_split(name, split, known) if known else split
    cache_dir = data_dir / "jaxood_cache" / name / str(builder.info.version)
    paths = {k: cache_dir / f"{split}_{k}.npy" for k in ("images", "labels")}
    paths["manifest"] = cache_dir / f"{split}_manifest.json"
    expected = _expected_count(builder, tfds_split)
    arrays = None
    if cache and paths["images"].is_file() and paths["labels"].is_file():
        arrays, problem = _read_cache(paths, expected)
        if arrays is None:
            warnings.warn(
                f"Stale or corrupt cache {paths['images']} ({problem}); rebuilding "
                "it from the prepared dataset.",
                stacklevel=2,
            )
    if arrays is None:
        arrays = _read(name, tfds_split, data_dir)
        problem = _cache_problem(arrays, None, expected)
        if problem is not None:
            raise DataError(
                f"{name}/{split} read from {data_dir / name} does not verify "
                f"({problem}): the prepared copy is stale or truncated. Delete "
                f"{data_dir / name} and {cache_dir} and load again to rebuild them."
            )
        if cache:
            for k in ("images", "labels"):
                _save_atomic(paths[k], arrays[k])
            _write_manifest(paths["manifest"], arrays)
    images = arrays["images"]
    if images.ndim == 3:
        images = images[..., None]
    return (images, arrays["labels"]) if with_labels else images
