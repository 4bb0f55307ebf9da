"""The ``general_images`` builder on a handful of real images laid out as the four
Debian packages lay them out (photographs and a transparent logo of scikit-image)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxood import data
from jaxood.data import general_images as gi
from jaxood.data import sources
from jaxood.data.preparation import OFFLINE_BUILDERS, default_names

SKIMAGE = Path(sources._package_file("skimage", "data/camera.png", "")).parent
DRAWINGS = {  # openclipart-png, relative to its folder: kept?
    "plants/coffee_01.png": True,
    "shapes/logo_01.png": True,  # RGBA with a transparent background
    "food/chelsea.png": True,
    "animals/mammals/cat_01.png": False,  # an Animal-MNIST subject
    "people/clothing/coat_01.png": False,
    "recreation/sports/tennis_shoe_01.png": False,
    "education/alphabet_a.png": False,
}
SOURCE_OF = {"coffee": "coffee.png", "logo": "logo.png", "chelsea": "chelsea.png",
             "cat": "chelsea.png", "coat": "coffee.png", "tennis": "rocket.jpg",
             "alphabet": "text.png"}  # fmt: skip


def _copy(name: str, dest: Path, size: tuple[int, int] | None = None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(SKIMAGE / name)
    (image.resize(size) if size else image).save(dest)


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """``sources/<package>/<folder>`` as ``prepare`` caches fetched packages."""
    root = tmp_path_factory.mktemp("sources")
    folder = {p: root / p / f for p, (f, _) in gi.PACKAGES.items()}
    for relative in DRAWINGS:
        stem = Path(relative).name.split("_")[0].removesuffix(".png")
        _copy(SOURCE_OF[stem], folder["openclipart-png"] / relative)
    gnome = folder["gnome-backgrounds"]
    _copy("astronaut.png", gnome / "astro-l.png")
    _copy("astronaut.png", gnome / "astro-d.png", (256, 256))  # its dark variant
    _copy("moon.png", folder["mate-backgrounds"] / "nature" / "Moon.png")
    plasma = folder["plasma-workspace-wallpapers"] / "Rocket" / "contents"
    _copy("rocket.jpg", plasma / "images" / "1280x720.jpg")
    _copy("rocket.jpg", plasma / "images" / "640x360.jpg", (320, 180))
    _copy("rocket.jpg", plasma / "screenshot.png", (100, 60))
    return root


def _folders(root: Path) -> dict[str, Path]:
    return gi.package_folders(root, allow_apt=False)


def test_sources_leave_out_evaluation_subjects_and_group_variants(packages):
    found = gi.find_sources(_folders(packages))
    drawings = {s.group for s in found if s.package == gi.CLIP_ART}
    assert drawings == {d for d, kept in DRAWINGS.items() if kept}
    wallpapers = {s.group: s.path.name for s in found if s.package != gi.CLIP_ART}
    assert wallpapers == {  # one per group: the largest file
        "gnome-backgrounds/astro": "astro-l.png",
        "mate-backgrounds/nature/Moon": "Moon.png",
        "plasma-workspace-wallpapers/Rocket": "1280x720.jpg",
    }


def test_crops_are_grey_textured_and_deterministic(packages):
    found = gi.find_sources(_folders(packages))
    first = dict(gi.generate(found))
    again = dict(gi.generate(found, chosen=np.arange(len(found)) % 2 == 0))
    assert set(again) == {i for i in first if i % 2 == 0}
    for index, crops in again.items():  # a subset draws the very same crops
        np.testing.assert_array_equal(crops, first[index])
    for index, crops in first.items():
        wallpaper = found[index].package != gi.CLIP_ART
        assert crops.dtype == np.uint8 and crops.shape[1:] == (28, 28)
        assert 0 < len(crops) <= (gi.CROPS_PER_WALLPAPER if wallpaper else 24)
        assert crops.reshape(len(crops), -1).std(axis=1).min() >= gi.MIN_STD
    logo = gi.grey(next(s.path for s in found if "logo" in s.group))
    assert logo[0, 0] == 255  # transparent corner -> white, not black


def test_split_is_by_source_image(packages, tmp_path, monkeypatch):
    monkeypatch.setattr(gi, "CROPS_PER_WALLPAPER", 40)
    monkeypatch.setattr(gi, "TEST_FRACTION", 0.5)
    shutil.copytree(packages, tmp_path / "sources")
    assert data.prepare(["general_images"], data_dir=tmp_path, allow_apt=False) == [
        "general_images"
    ]
    train, train_labels = data.load("general_images", "train", data_dir=tmp_path,
                                    with_labels=True)  # fmt: skip
    test, test_labels = data.load("general_images", "test", data_dir=tmp_path,
                                  with_labels=True)  # fmt: skip
    assert train.shape[1:] == test.shape[1:] == (28, 28, 1)
    assert len(train) > 0 and len(test) > 0
    assert not set(train_labels) & set(test_labels)


def test_missing_packages_name_the_debian_package(tmp_path):
    with pytest.raises(data.SourceMissingError, match="openclipart-png"):
        data.prepare(["general_images"], data_dir=tmp_path, allow_apt=False)
    assert not data.is_prepared("general_images", tmp_path)


def test_it_is_prepared_only_on_request():
    assert "general_images" in OFFLINE_BUILDERS
    assert "general_images" not in default_names()
