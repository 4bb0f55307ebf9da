"""Decoder likelihoods p(x|z) of 8-bit images scaled to [0, 1]: log p in nats per image.

- ``bernoulli``: per-pixel Bernoulli with the grey level as a soft target,
  ``Σ x·l − softplus(l)``. Not a normalised density of 8-bit images, but the usual
  choice of MNIST-type VAEs, and defined for any real x (the intensity-scaling
  ablation feeds x·s with s up to 15).
- ``logistic``: discretised logistic over the 256 bins, one logistic per pixel
  (PixelCNN++ without the mixture), edge bins absorbing the tails. A probability
  mass function: log p ≤ 0 per pixel, comparable to bits/dim of other models.
- ``categorical``: 256-way softmax per pixel (the likelihood-regret reference).

The discrete likelihoods recover the bin of x by ``round(255·x)``, so x must be an
8-bit image divided by 255.

References: Salimans et al., "PixelCNN++", ICLR 2017 (discretised logistic); Xiao
et al., "Likelihood Regret", NeurIPS 2020 (256-way categorical decoder).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxood.typing import Array

LIKELIHOODS = ("bernoulli", "logistic", "categorical")
_PER_CHANNEL = {"bernoulli": 1, "logistic": 2, "categorical": 256}
_HALF_BIN = 1.0 / 255.0  # half a bin in [-1, 1] units


def output_channels(likelihood: str, channels: int) -> int:
    """Decoder output channels the likelihood needs for ``channels`` image channels."""
    if likelihood not in _PER_CHANNEL:
        raise ValueError(
            f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}."
        )
    return _PER_CHANNEL[likelihood] * channels


def _bins(x: Array) -> Array:
    return jnp.clip(jnp.round(x * 255.0), 0, 255).astype(jnp.int32)


def _logistic_log_mass(x: Array, mean: Array, log_scale: Array) -> Array:
    y = 2.0 * x - 1.0
    inv_s = jnp.exp(-log_scale)
    plus = inv_s * (y - mean + _HALF_BIN)
    minus = inv_s * (y - mean - _HALF_BIN)
    log_cdf_plus = jax.nn.log_sigmoid(plus)  # the bottom bin: log F(upper edge)
    log_one_minus_cdf_minus = -jax.nn.softplus(minus)  # the top bin
    mid = inv_s * (y - mean)
    # log of the density at the bin centre times the bin width: used when the
    # difference of the two CDFs underflows (far tails, sharp logistics).
    log_pdf_mid = mid - log_scale - 2.0 * jax.nn.softplus(mid) + jnp.log(2 * _HALF_BIN)
    delta = jax.nn.sigmoid(plus) - jax.nn.sigmoid(minus)
    log_delta = jnp.where(delta > 1e-5, jnp.log(jnp.maximum(delta, 1e-12)), log_pdf_mid)
    return jnp.where(
        y < -0.999,
        log_cdf_plus,
        jnp.where(y > 0.999, log_one_minus_cdf_minus, log_delta),
    )


def log_likelihood(likelihood: str, out: Array, x: Array) -> Array:
    """``log p(x | decoder output)`` summed over pixels: ``(B, H, W, C) -> (B,)``.

    Args:
        likelihood: one of :data:`LIKELIHOODS`.
        out: ``(B, H, W, output_channels)`` decoder output.
        x: ``(B, H, W, C)`` images in [0, 1] (any real values for bernoulli).

    Returns:
        ``(B,)`` log-likelihoods in nats.
    """
    c = x.shape[-1]
    if likelihood == "bernoulli":
        per_pixel = x * out - jax.nn.softplus(out)
    elif likelihood == "logistic":
        per_pixel = _logistic_log_mass(x, out[..., :c], jnp.maximum(out[..., c:], -7.0))
    elif likelihood == "categorical":
        logits = out.reshape(*x.shape, 256)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        per_pixel = jnp.take_along_axis(log_p, _bins(x)[..., None], axis=-1)[..., 0]
    else:
        raise ValueError(
            f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}."
        )
    return jnp.sum(per_pixel, axis=tuple(range(1, x.ndim)))


def mean_image(likelihood: str, out: Array, channels: int) -> Array:
    """``E[x | z]`` in [0, 1]: ``(B, H, W, output_channels) -> (B, H, W, C)``."""
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(out)
    if likelihood == "logistic":
        # The logistic's mean, clipped to the image range (the edge bins' mass).
        return jnp.clip((out[..., :channels] + 1.0) / 2.0, 0.0, 1.0)
    if likelihood == "categorical":
        probs = jax.nn.softmax(out.reshape(*out.shape[:-1], channels, 256), axis=-1)
        return probs @ (jnp.arange(256, dtype=out.dtype) / 255.0)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}.")
