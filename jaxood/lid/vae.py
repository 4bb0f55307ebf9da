"""VAE LID: the spectrum of the decoder mean's D×d Jacobian at the posterior mode.

A VAE decoder maps R^d (or S^{d−1}) to images, so at most d singular values are
non-zero; the threshold count of :func:`jaxood.lid.threshold_lid` then says how many
latent directions the decoder actually uses around x.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD Detection
Paradox", ICML 2024 (LID from a decoder's Jacobian).
"""

from __future__ import annotations

import functools

import jax

from jaxood.lid.spectrum import Spectrum, jacobian_spectrum
from jaxood.typing import Array, Params
from jaxood.vae.model import VAE, check_images, decode_mean, encode


@functools.partial(jax.jit, static_argnames=("model", "chunk_size"))
def _spectra(model: VAE, params: Params, x: Array, chunk_size: int | None):
    z = encode(model, params, x).loc
    d = model.config.latent_dim
    decode = lambda v: decode_mean(model, params, v[None])[0]  # noqa: E731

    def one(v):
        return jacobian_spectrum(
            decode, v, chunk_size=chunk_size or d, expected_dim=model.config.num_dims
        )

    return jax.lax.map(one, z)


def vae_decoder_spectra(
    model: VAE, params: Params, x: Array, *, chunk_size: int | None = None
) -> Spectrum:
    """Singular values of ``∂E[x|z]/∂z`` at z = the posterior mode of each image.

    For the vMF latent the Jacobian is taken in R^d (the decoder's ambient input);
    its tangential part has d − 1 directions.

    Args:
        model, params: the VAE.
        x: ``(B, H, W, C)`` images in [0, 1].
        chunk_size: JVPs per chunk (default: all d at once).

    Returns:
        :class:`Spectrum` with a leading batch axis: singular values ``(B, d)``.
    """
    check_images(model, x)
    return _spectra(model, params, x, chunk_size)
