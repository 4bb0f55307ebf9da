"""Deterministic synthetic OOD sets: noise, constants, and transformed Fashion-MNIST.

Each function returns uint8 images ``(N, 28, 28, 1)``, the same for the same seed on
any machine (numpy's PCG64). They are the sanity checks of every OOD table: a
likelihood model should flag uniform noise easily, while constant and flipped images
are the classic cases where it does not.
"""

from __future__ import annotations

import numpy as np

SHAPE = (28, 28, 1)


def uniform_noise(num: int, seed: int = 0) -> np.ndarray:
    """Independent uniform pixels in 0..255."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(num, *SHAPE), dtype=np.uint8)


def constant(num: int, seed: int = 0) -> np.ndarray:
    """Images of a single grey level each, levels uniform in 0..255."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 256, size=(num, 1, 1, 1), dtype=np.uint8)
    return np.broadcast_to(levels, (num, *SHAPE)).copy()


def vertical_flip(images: np.ndarray) -> np.ndarray:
    """Upside-down images (rows reversed); images ``(N, H, W, C)``."""
    return np.ascontiguousarray(images[:, ::-1])


def invert(images: np.ndarray) -> np.ndarray:
    """Intensity-inverted uint8 images: 255 - x."""
    return 255 - images
