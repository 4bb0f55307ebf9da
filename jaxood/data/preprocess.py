"""From uint8 pixels to model space and back, and the one bits/dim formula.

Model space follows Schirrmeister et al. (2020): pixel k in 0..255 maps to
``x = k / 256 - 0.5``, so data lie in a range of width 1 cut into 256 bins of width
1/256. Training adds uniform noise u ~ U[0, 1/256) (dequantization); evaluation uses
the deterministic bin midpoint k/256 + 1/512 - 0.5. A log-density of x in this space
is a continuous density on a width-1 range, hence the ``+ log2(256)`` in
:func:`bits_per_dim`.

References: Schirrmeister et al., "Understanding Anomaly Detection with Deep Invertible
Networks through Hierarchies of Distributions and Features", NeurIPS 2020;
Theis et al., "A note on the evaluation of generative models", ICLR 2016.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import checks, parallel
from jaxood.typing import Array, PRNGKey

NUM_BINS = 256


def _check_uint8_images(images, what: str = "images") -> None:
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        raise TypeError(
            f"{what} must be a uint8 array (N, H, W, C), got "
            f"{type(images).__name__}. Convert with `np.asarray(x, np.uint8)`."
        )
    dtype = np.dtype(images.dtype)
    if dtype != np.uint8:
        raise TypeError(
            f"{what} must be uint8 pixels (0..255), got dtype {dtype}. "
            "Convert raw data with `np.asarray(x, np.uint8)`; data already in model "
            "space must not be dequantized twice."
        )
    if images.ndim != 4:
        raise ValueError(
            f"{what} must have shape (N, H, W, C), got {tuple(images.shape)}. "
            "Add the channel axis with `x[..., None]`."
        )
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty (shape {tuple(images.shape)}).")


def dequantize(key: PRNGKey, images: Array) -> Array:
    """Uniform dequantization into model space, for training.

    Args:
        key: PRNG key; the noise is a pure function of it.
        images: uint8 ``(N, H, W, C)`` pixels.

    Returns:
        float32 ``(N, H, W, C)`` in ``[-0.5, 0.5)``: ``(k + u) / 256 - 0.5``,
        ``u ~ U[0, 1)``.
    """
    _check_uint8_images(images)
    noise = jax.random.uniform(key, images.shape, jnp.float32)
    return (jnp.asarray(images, jnp.float32) + noise) / NUM_BINS - 0.5


def mutate(key: PRNGKey, images: Array, rate: float) -> Array:
    """Ren et al.'s input perturbation for training a background model.

    Every pixel (each channel value) is independently, with probability ``rate``,
    replaced by a value drawn uniformly from {0, ..., 255}; the rest are kept.

    Args:
        key: PRNG key; the mutation is a pure function of it.
        images: uint8 ``(N, H, W, C)`` pixels.
        rate: mutation rate μ in [0, 1].

    Returns:
        uint8 images of the same shape.

    References: Ren et al., "Likelihood Ratios for Out-of-Distribution Detection",
    NeurIPS 2019.
    """
    _check_uint8_images(images)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"mutation rate must lie in [0, 1], got {rate}.")
    images = jnp.asarray(images)
    flip_key, value_key = jax.random.split(key)
    like = parallel.batch_sharding(images)
    flip = jax.random.bernoulli(flip_key, rate, images.shape, out_sharding=like)
    values = jax.random.randint(
        value_key, images.shape, 0, NUM_BINS, jnp.int32, out_sharding=like
    )
    return jnp.where(flip, values.astype(jnp.uint8), images)


def to_model_space(images: Array) -> Array:
    """Deterministic bin midpoints in model space, for evaluation.

    Args:
        images: uint8 ``(N, H, W, C)`` pixels.

    Returns:
        float32 ``(N, H, W, C)``: ``(k + 0.5) / 256 - 0.5``.
    """
    _check_uint8_images(images)
    return (jnp.asarray(images, jnp.float32) + 0.5) / NUM_BINS - 0.5


def to_unit_interval(images: Array) -> Array:
    """8-bit pixels divided by 255: the [0, 1] input space of the VAEs.

    Args:
        images: uint8 ``(N, H, W, C)`` pixels.

    Returns:
        float32 ``(N, H, W, C)`` in [0, 1]; the bin of x is ``round(255 x)``.
    """
    _check_uint8_images(images)
    return jnp.asarray(images, jnp.float32) / (NUM_BINS - 1)


def to_uint8(x: Array) -> Array:
    """Inverse of the model-space map (floor to the bin), clipped to 0..255."""
    k = jnp.floor((jnp.asarray(x) + 0.5) * NUM_BINS)
    return jnp.clip(k, 0, NUM_BINS - 1).astype(jnp.uint8)


def check_model_space(x: Array, image_shape: tuple[int, ...] | None = None) -> None:
    """Raises a clear error unless ``x`` is a float batch in model space.

    Data-boundary check: dtype float32/float64, shape ``(N, *image_shape)``, finite
    values inside ``[-0.5, 0.5]``. Traceable: under ``jit`` the value part is a
    :mod:`jaxood.checks` check (active under ``jaxood.checks.checked``).
    """
    checks.float_array(
        x,
        "x",
        "Map uint8 pixels with jaxood.data.to_model_space (evaluation) or "
        "jaxood.data.dequantize (training).",
    )
    if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"x has shape {tuple(x.shape)}, the model expects (N, {image_shape}). "
            "28x28 data for a multi-scale model goes through jaxood.data.resize "
            "or jaxood.data.pad first."
        )
    checks.model_space(x, "x")


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 images to ``size`` x ``size`` (as torchvision's Resize).

    Schirrmeister et al. resize MNIST-family 28x28 images to 32x32 so that three 2x2
    squeezes fit. Non-square images are centre-cropped to a square first (CelebA's
    218x178 faces to 178x178), so nothing is stretched. Rounds back to uint8 so
    dequantization stays exact.

    Args:
        images: uint8 ``(N, H, W, C)``.
        size: target height and width.

    Returns:
        uint8 ``(N, size, size, C)``.
    """
    _check_uint8_images(images)
    n, h, w, c = images.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    images = images[:, top : top + side, left : left + side]
    out = jax.image.resize(
        jnp.asarray(images, jnp.float32), (n, size, size, c), method="linear"
    )
    return np.asarray(jnp.clip(jnp.round(out), 0, 255), np.uint8)


def pad(images: np.ndarray, size: int, value: int = 0) -> np.ndarray:
    """Centres uint8 images on a ``size`` x ``size`` canvas filled with ``value``."""
    _check_uint8_images(images)
    _, h, w, _ = images.shape
    if size < h or size < w:
        raise ValueError(f"pad: target {size} is smaller than the images ({h}x{w}).")
    top, left = (size - h) // 2, (size - w) // 2
    widths = ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0))
    return np.pad(np.asarray(images), widths, constant_values=value)


def bits_per_dim(nll_nats: Array, num_dims: int, num_bins: int = NUM_BINS) -> Array:
    """Bits per dimension of the discretised data from a model-space NLL.

    ``bpd = nll / (D ln 2) + log2(num_bins)``: the NLL in nats of the continuous
    density on model space (width-1 range) plus the bin width 1/num_bins.

    Args:
        nll_nats: ``-log p(x)`` in nats, any shape (e.g. ``-lp.total``).
        num_dims: D, the number of data dimensions (e.g. 1024 for 32x32x1).
        num_bins: quantisation levels per dimension.

    Returns:
        bits/dim, same shape as ``nll_nats``.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}.")
    return jnp.asarray(nll_nats) / (num_dims * math.log(2.0)) + math.log2(num_bins)
