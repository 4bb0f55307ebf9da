"""``general_images``: a large offline "general" image set from Debian packages.

Schirrmeister et al. (2020) train their general model on 80 Million Tiny Images,
which has been withdrawn. This set stands in for it with images that Debian ships:
thousands of public-domain drawings (``openclipart-png``) and the desktop
wallpapers of three desktops (photographs and abstract art: ``gnome-backgrounds``,
``mate-backgrounds``, ``plasma-workspace-wallpapers``). Each source image gives
random square grey crops at several scales, bilinearly resized to 28 × 28; the
train/test split is by source image, so no test crop shares a picture with a
training crop.

What is left out, by rule and before any OOD result was seen: drawings whose
subject is a class of an evaluation set (the ``people/clothing`` and ``animals``
folders, files named after shoes, bags, shirts and other Fashion-MNIST classes,
digits, letters, LEDs and playing cards), duplicates (openclipart's
``unsorted/duplicates``, the alternative resolutions and dark variants of a
wallpaper), vector files (no renderer is a dependency) and near-constant crops
(a grey-level standard deviation under :data:`MIN_STD`, which would resemble the
``constant`` OOD set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxood.data import debian
from jaxood.data.errors import DataError

# Debian package -> the folder of its images (relative to /) and their licence.
PACKAGES = {
    "openclipart-png": ("usr/share/openclipart/png", "public domain (CC0-style)"),
    "gnome-backgrounds": ("usr/share/backgrounds/gnome", "CC BY-SA 3.0"),
    "mate-backgrounds": ("usr/share/backgrounds/mate", "GPL-2+ / CC BY-SA 4.0"),
    "plasma-workspace-wallpapers": ("usr/share/wallpapers", "GPL-2+"),
}
CLIP_ART = "openclipart-png"
EXCLUDED_FOLDERS = ("people/clothing", "animals", "unsorted/duplicates",
                    "signs_and_symbols/led", "recreation/games/cards")  # fmt: skip
# Subjects of the evaluation sets (Fashion-MNIST's classes, digits and letters).
EXCLUDED_WORDS = re.compile(
    r"shirt|dress|shoe|sneaker|boot|trouser|pant|coat|jacket|pullover|sweater|bag"
    r"|sandal|cloth|digit|number|numeral|letter|alphabet|font|glyph|text|silhouet",
    re.IGNORECASE,
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SIZE = 28
SEED = 20261201
TEST_FRACTION = 0.1  # of the source images of each kind
# Crops per source image: a wallpaper is large and yields many distinct crops, a
# drawing few; about half of the crops come from each kind.
CROPS_PER_DRAWING = 24
CROPS_PER_WALLPAPER = 1500
# Crop side as a fraction of the image's shorter side, log-uniform in this range.
CROP_FRACTIONS = (1 / 16, 1.0)
MIN_CROP_SIDE = 16  # pixels
MIN_STD = 4.0  # grey levels; flatter crops are drawn again
MAX_TRIES = 10
MAX_PIXELS = 40_000_000
LUMA = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as for the grey Tiny Images


class Source(NamedTuple):
    """One source image: its file, the package and the group of its variants."""

    path: Path
    package: str
    group: str  # images of one group (resolutions, light/dark) share a split


def is_excluded(relative: str) -> bool:
    """Whether a drawing (path relative to the openclipart folder) is left out."""
    if any(relative.startswith(folder + "/") for folder in EXCLUDED_FOLDERS):
        return True
    return EXCLUDED_WORDS.search(Path(relative).name) is not None


def find_sources(folders: dict[str, Path]) -> list[Source]:
    """The source images under each package's folder, sorted, variants grouped.

    Args:
        folders: Debian package name -> the folder of its images.
    """
    out = []
    for package, root in sorted(folders.items()):
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if package == CLIP_ART:
            out += [Source(p, package, str(p.relative_to(root))) for p in files
                    if not is_excluded(str(p.relative_to(root)))]  # fmt: skip
            continue
        largest: dict[str, Path] = {}  # group -> its largest file
        for path in files:
            parts = path.relative_to(root).parts
            if "contents" in parts:  # Plasma: NAME/contents/images*/WxH.ext
                if parts[-2] != "images":  # screenshots, dark variants
                    continue
                group = parts[0]
            else:  # GNOME's NAME-l / NAME-d, MATE's NAME_WxH variants
                name = str(path.relative_to(root).with_suffix(""))
                group = re.sub(r"(-[ld]|_\d+x\d+)$", "", name)
            size = path.stat().st_size
            if group not in largest or size > largest[group].stat().st_size:
                largest[group] = path
        out += [
            Source(p, package, f"{package}/{g}") for g, p in sorted(largest.items())
        ]
    return out


def split_sources(sources: Sequence[Source], seed: int = SEED) -> np.ndarray:
    """Boolean ``(len(sources),)``: True for the test sources (a fixed fraction of
    each package's groups, at random)."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(sources), bool)
    for package in sorted({s.package for s in sources}):
        groups = sorted({s.group for s in sources if s.package == package})
        test = set(rng.permutation(groups)[: round(TEST_FRACTION * len(groups))])
        is_test |= [s.package == package and s.group in test for s in sources]
    return is_test


def grey(path: Path) -> np.ndarray | None:
    """A grey uint8 ``(H, W)`` image; transparent pixels become white (clip art).

    None for an image over :data:`MAX_PIXELS` (a few drawings are rendered at
    hundreds of megapixels: a gigabyte each to decode, for 28-pixel crops).
    """
    from PIL import Image

    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        return None
    with image:
        if image.width * image.height > MAX_PIXELS:
            return None
        image.load()
        # Crops are at least 1/16 of the shorter side and end up SIZE pixels wide:
        # 16 * SIZE pixels on the shorter side keep every crop's detail.
        scale = 16 * SIZE / min(image.size)
        if scale < 1:
            new = (round(image.width * scale), round(image.height * scale))
            image = image.resize(new, Image.BOX)
        if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        rgb = np.asarray(image.convert("RGB"), np.float64)
    return np.clip(np.round(rgb @ np.asarray(LUMA)), 0, 255).astype(np.uint8)


def crops(
    image: np.ndarray, count: int, rng: np.random.Generator, size: int = SIZE
) -> np.ndarray:
    """Up to ``count`` random square crops of ``image``, resized to ``size``.

    Sides are log-uniform fractions (:data:`CROP_FRACTIONS`) of the shorter side,
    at least :data:`MIN_CROP_SIDE`; each crop is flipped horizontally with
    probability 1/2; a crop flatter than :data:`MIN_STD` is drawn again, at most
    :data:`MAX_TRIES` times, and dropped after that.
    """
    from PIL import Image

    short = min(image.shape)
    low, high = np.log(CROP_FRACTIONS[0]), np.log(CROP_FRACTIONS[1])
    out = []
    for _ in range(count):
        for _ in range(MAX_TRIES):
            side = max(int(short * np.exp(rng.uniform(low, high))), MIN_CROP_SIDE)
            side = min(side, short)
            top = rng.integers(0, image.shape[0] - side + 1)
            left = rng.integers(0, image.shape[1] - side + 1)
            crop = image[top : top + side, left : left + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            small = Image.fromarray(np.ascontiguousarray(crop))
            small = np.asarray(small.resize((size, size), Image.BILINEAR))
            if small.std() >= MIN_STD:
                out.append(small)
                break
    return np.stack(out) if out else np.zeros((0, size, size), np.uint8)


def generate(
    sources: Sequence[Source],
    chosen: np.ndarray | None = None,
    seed: int = SEED,
    size: int = SIZE,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(source index, crops)`` per readable source image (only those ``chosen``,
    a boolean mask), deterministic in ``seed`` and the source's index: each source
    has its own random stream, so a split never changes the other's crops."""
    for index, source in enumerate(sources):
        if chosen is not None and not chosen[index]:
            continue
        try:
            image = grey(source.path)
        except (OSError, ValueError) as err:  # a damaged file in a package
            raise DataError(
                f"Cannot read {source.path} of the Debian package {source.package} "
                f"({err}). Fix: {debian.install_hint(source.package)}."
            ) from err
        if image is None or min(image.shape) < MIN_CROP_SIDE:
            continue
        count = CROPS_PER_DRAWING if source.package == CLIP_ART else CROPS_PER_WALLPAPER
        yield index, crops(image, count, np.random.default_rng([seed, index]), size)


def package_folders(cache_dir: Path | None, *, allow_apt: bool = True) -> dict:
    """Each package's image folder: installed, cached under ``cache_dir`` or
    fetched (:func:`jaxood.data.debian.package_folder`)."""
    return {
        package: debian.package_folder(package, folder, cache_dir, allow_apt=allow_apt)
        for package, (folder, _) in PACKAGES.items()
    }
