"""The idempotent prepare step for jaxood's offline tfds datasets.

Each dataset is built in a temporary directory next to its destination and moved in
place only when complete, so a failed or interrupted prepare leaves nothing
half-written behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import tensorflow_datasets as tfds

from jaxood.data import general_images, sources
from jaxood.data.builders import OFFLINE_BUILDERS
from jaxood.data.errors import DataError, UnknownDatasetError

# Prepared only when asked for by name (or loaded): a 300 MB download and about
# five minutes of building, which `make run` does not need.
ON_REQUEST = ("general_images",)


def default_names() -> list[str]:
    """What :func:`prepare` builds when given no names: all but :data:`ON_REQUEST`."""
    return [n for n in OFFLINE_BUILDERS if n not in ON_REQUEST]


def default_data_dir() -> Path:
    """``$JAXOOD_DATA_DIR`` if set, else ``~/.cache/jaxood/datasets``."""
    env = os.environ.get("JAXOOD_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "jaxood" / "datasets"


def _version_dir(name: str, data_dir: Path) -> Path:
    return data_dir / name / str(OFFLINE_BUILDERS[name].VERSION)


def is_prepared(name: str, data_dir: Path) -> bool:
    """Whether ``name`` has a complete prepared copy under ``data_dir``."""
    return (_version_dir(name, data_dir) / "dataset_info.json").is_file()


def prepare(
    names: Iterable[str] | None = None,
    *,
    data_dir: str | Path | None = None,
    allow_apt: bool = True,
) -> list[str]:
    """Prepares offline datasets as tfds array_record directories.

    Args:
        names: subset of the offline names; default all but :data:`ON_REQUEST`.
        data_dir: tfds data directory (default :func:`default_data_dir`).
        allow_apt: let Debian packages that are not installed
            (``dataset-fashion-mnist``, the ``general_images`` sources) be fetched
            with ``apt-get download`` into ``data_dir/sources``.

    Returns:
        The names that were built now (already prepared ones are skipped).

    Raises:
        UnknownDatasetError: a name is not an offline dataset.
        SourceMissingError: a source package is missing; the message gives the
            apt/pip command that installs it.
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(
            f"data_dir {data_dir} is a file, not a directory. Pass a directory "
            "(or set JAXOOD_DATA_DIR to one); it is created if missing."
        )
    names = default_names() if names is None else list(names)
    unknown = [n for n in names if n not in OFFLINE_BUILDERS]
    if unknown:
        raise UnknownDatasetError(
            f"No offline builder for {unknown}. Offline datasets: "
            f"{', '.join(OFFLINE_BUILDERS)}."
        )
    built = []
    for name in names:
        if is_prepared(name, data_dir):
            continue
        download_config, manual = None, data_dir / "sources"
        if name == "fashion_mnist":
            manual = sources.fashion_mnist_dir(manual, allow_apt=allow_apt)
        if name == "general_images":  # fetched here: the builder never calls apt
            general_images.package_folders(manual, allow_apt=allow_apt)
        if name in ("fashion_mnist", "general_images"):
            download_config = tfds.download.DownloadConfig(manual_dir=str(manual))
        data_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".prepare-{name}-", dir=data_dir))
        try:
            builder = OFFLINE_BUILDERS[name](
                data_dir=str(staging), file_format="array_record"
            )
            builder.download_and_prepare(download_config=download_config)
            final = _version_dir(name, data_dir)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name / str(builder.VERSION), final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # Arrays cached from an earlier build of this dataset are stale now.
        shutil.rmtree(data_dir / "jaxood_cache" / name, ignore_errors=True)
        built.append(name)
    return built
