"""Flow LID: the Jacobian spectrum of a multi-scale flow's decoder at z0 = f⁻¹(x).

The decoder maps the concatenated standardised latents (D values) to a model-space
image; its Jacobian is D×D. Batched over images with ``lax.map`` so memory stays that
of one image's chunked JVPs.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD Detection
Paradox", ICML 2024 (flow LID from the decoder Jacobian); docs/lid.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.flows.glow import Glow, encode
from jaxood.lid.quadrature import SpectralQuadrature, check_counts, slq
from jaxood.lid.spectrum import Spectrum, jacobian_spectrum
from jaxood.parallel import map_per_shard
from jaxood.typing import Array, Params, PRNGKey


def flatten_latents(latents: tuple[Array, ...]) -> Array:
    """``(B, ...)`` per-scale latents -> ``(B, D)``."""
    return jnp.concatenate([u.reshape(u.shape[0], -1) for u in latents], axis=-1)


def unflatten_latents(model: Glow, flat: Array) -> tuple[Array, ...]:
    """Inverse of :func:`flatten_latents` for ``(B, D)`` arrays."""
    out, start = [], 0
    for shape in model.latent_shapes:
        size = shape[0] * shape[1] * shape[2]
        out.append(flat[:, start : start + size].reshape(flat.shape[0], *shape))
        start += size
    return tuple(out)


def flow_decoder(model: Glow, params: Params):
    """``z (D,) -> x (H, W, C)``: the flow's decoder on one flattened latent."""

    def decode(z: Array) -> Array:
        return model.inverse(params, unflatten_latents(model, z[None]))[0]

    return decode


def _check_batch(x: Array) -> None:
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"x must be a batch (B, H, W, C) of model-space images, got shape "
            f"{tuple(getattr(x, 'shape', ()))}; add a batch axis with x[None]."
        )


def _flow_spectra(
    model: Glow, params: Params, x: Array, *, chunk_size: int, vectors: bool
) -> tuple[Spectrum, Array]:
    _check_batch(x)
    # encode checks dtype and shape statically and the values through checks.
    z0 = flatten_latents(encode(model, params, x))

    def one(z, params):
        decode = flow_decoder(model, params)
        return jacobian_spectrum(decode, z, chunk_size=chunk_size, vectors=vectors)

    return map_per_shard(one, z0, params), z0  # each device its own images


_STATIC = ("chunk_size", "vectors")
_flow_spectra_jit = jax.jit(_flow_spectra, static_argnums=0, static_argnames=_STATIC)


def flow_spectra(
    model: Glow,
    params: Params,
    x: Array,
    *,
    chunk_size: int = 128,
    vectors: bool = False,
) -> tuple[Spectrum, Array]:
    """Decoder Jacobian spectra at ``z0 = f⁻¹(x)`` for a batch of model-space images.

    Jitted with ``model``, ``chunk_size`` and ``vectors`` static. ``x`` is checked
    as in :func:`jaxood.flows.log_prob`: a plain call raises ``InputError`` on NaN
    or values outside model space; inside your own ``jit`` the check is active
    under ``jaxood.checks.checked``.

    Args:
        model, params: the flow.
        x: ``(B, H, W, C)`` float32 model-space images.
        chunk_size: JVPs per chunk (memory ~ chunk × D per image); clamped to D.
        vectors: also return right singular vectors (for LIDL).

    Returns:
        ``(spectrum with a leading batch axis, z0 (B, D))``.
    """
    chunk_size = checks.positive_int(chunk_size, "chunk_size")
    _check_batch(x)
    checks.model_space(x, "x")  # on the host now, or a checkify check if traced
    return _flow_spectra_jit(
        model,
        params,
        x,
        chunk_size=chunk_size,
        vectors=bool(vectors),
    )


def flow_encoder(model: Glow, params: Params):
    """``x (H, W, C) -> z (D,)``: the encoder, inverse of :func:`flow_decoder`."""

    def encode_one(x: Array) -> Array:
        return flatten_latents(model.forward(params, x[None]).latents)[0]

    return encode_one


_SLQ_STATIC = ("num_probes", "num_steps", "unroll", "batch_size")


@functools.partial(jax.jit, static_argnums=0, static_argnames=_SLQ_STATIC)
def _flow_slq(model, params, x, key, *, num_probes, num_steps, unroll, batch_size):
    z0 = flatten_latents(model.forward(params, x).latents)
    decode, encode_one = flow_decoder(model, params), flow_encoder(model, params)

    def one(args):
        z, k = args
        return slq(
            decode,
            z,
            k,
            inverse_fn=encode_one,
            num_probes=num_probes,
            num_steps=num_steps,
            unroll=unroll,
        )

    keys = jax.random.split(key, x.shape[0])
    return jax.lax.map(one, (z0, keys), batch_size=batch_size), z0


def flow_slq(
    model: Glow,
    params: Params,
    x: Array,
    key: PRNGKey,
    *,
    num_probes: int = 8,
    num_steps: int = 40,
    unroll: int | bool = 1,
    batch_size: int = 8,
) -> tuple[SpectralQuadrature, Array]:
    """Two-sided stochastic Lanczos quadratures of a flow's decoder at z0 = f⁻¹(x).

    Runs on ``JᵀJ`` (decoder JVP/VJP) and on ``(JᵀJ)⁻¹`` (encoder JVP/VJP at x),
    so :func:`jaxood.lid.threshold_lid_from` and :func:`jaxood.lid.lidl_from`
    resolve both ends of the spectrum. Jitted with the model and counts static;
    ``x`` is checked as in :func:`flow_spectra`.

    Args:
        model, params: the flow.
        x: ``(B, H, W, C)`` float32 model-space images.
        key: PRNG key (split per image).
        num_probes, num_steps, unroll: as :func:`jaxood.lid.slq`.
        batch_size: images vmapped together (memory ~ batch × probes × steps × D).

    Returns:
        ``(quadrature with a leading batch axis, z0 (B, D))``.
    """
    num_probes, num_steps = check_counts(
        num_probes, num_steps, unroll, model.config.num_dims
    )
    batch_size = checks.positive_int(batch_size, "batch_size")
    _check_batch(x)
    checks.model_space(x, "x")
    return _flow_slq(
        model,
        params,
        x,
        key,
        num_probes=num_probes,
        num_steps=num_steps,
        unroll=unroll,
        batch_size=min(batch_size, x.shape[0]),
    )
