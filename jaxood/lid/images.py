"""Exact flow LID of whole sets of uint8 images: what a dual-threshold study needs.

:func:`flow_spectra_images` gives, per image, the decoder's singular values at
z0 = f⁻¹(x) and log p(x); threshold LID at any τ is then a count
(:func:`jaxood.lid.threshold_lid`), so one pass serves every τ.
:func:`flow_lidl_images` gives LIDL curves over a sweep of δ = log σ. Both run over
the images in fixed-shape batches (split over the mesh set with ``jax.set_mesh``)
at the bin midpoints, like :func:`jaxood.flows.log_prob_images`; for sets that take
hours, call them on successive slices through :func:`jaxood.io.resumable_rows`.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD
Detection Paradox", ICML 2024; docs/lid.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import parallel
from jaxood.batching import map_batches
from jaxood.data.preprocess import to_model_space
from jaxood.flows.glow import Glow, log_prob
from jaxood.lid.estimators import lidl
from jaxood.lid.flow import flow_spectra
from jaxood.typing import Params


@jax.jit
def _lidl_sweep(spectrum, z0, deltas):
    # Each device sweeps its own images (a vmapped value check cannot run over a
    # batch axis split by explicit mesh axes).
    return parallel.per_shard(
        lambda b, d: jax.vmap(lidl, in_axes=(0, 0, None))(*b, d), (spectrum, z0), deltas
    )


def flow_spectra_images(
    model: Glow,
    params: Params,
    images: np.ndarray,
    *,
    batch_size: int = 4,
    chunk_size: int = 128,
    desc: str = "spectra",
) -> dict[str, np.ndarray]:
    """Decoder singular values and log p of every image.

    Args:
        model, params: the flow.
        images: ``(N, H, W, C)`` uint8 in the model's image shape.
        batch_size: images per jitted call (D JVPs and one SVD each).
        chunk_size: JVPs per chunk, as :func:`jaxood.lid.flow_spectra`.
        desc: progress-bar label.

    Returns:
        ``{"s": (N, D) float32 singular values, descending; "log_p": (N,) float64
        nats}``. A row of ``s`` is NaN where the decoder's Jacobian at z0 is not
        finite (the inverse flow overflows there: seen on a uniform-noise image
        whose log p is finite); drop such images before thresholding.
    """

    # Jitted inside: an op-by-op model.forward re-traces its scans every call, and
    # the executables it compiled each time exhausted the process's memory maps
    # ("LLVM ERROR: Unable to allocate section memory") after ~70 batches.
    def both(_, batch):
        x = to_model_space(batch)
        spectrum, _ = flow_spectra(model, params, x, chunk_size=chunk_size)
        return spectrum.singular_values, log_prob(model, params, x).total

    s, log_p = map_batches(both, images, batch_size, desc=desc)
    return {"s": s, "log_p": log_p.astype(np.float64)}


def flow_lidl_images(
    model: Glow,
    params: Params,
    images: np.ndarray,
    deltas: np.ndarray,
    *,
    batch_size: int = 4,
    chunk_size: int = 128,
    desc: str = "LIDL",
) -> np.ndarray:
    """LIDL of every image at every δ = log σ of ``deltas``: ``(N, len(deltas))``
    float64. One SVD with right singular vectors per image serves every δ."""

    def curves(_, batch):
        x = to_model_space(batch)
        spectrum, z0 = flow_spectra(
            model, params, x, chunk_size=chunk_size, vectors=True
        )
        return _lidl_sweep(spectrum, z0, jnp.asarray(deltas, jnp.float32))

    return map_batches(curves, images, batch_size, desc=desc).astype(np.float64)
