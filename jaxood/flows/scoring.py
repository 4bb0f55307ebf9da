"""Batched log-likelihoods of a whole image set, with a progress bar."""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import checkify

from jaxood import checks, parallel
from jaxood.batching import map_batches
from jaxood.data.preprocess import to_model_space
from jaxood.flows.glow import Glow, latents_to_image, log_prob
from jaxood.typing import Params

# The public log_prob under jit: traced, its value check is a checkify debug check
# that compiles away, so the scoring program is the unchecked one; each batch is
# checked by the separate small program below instead.
_batch_log_prob = jax.jit(log_prob, static_argnums=0)
_model_space_error = jax.jit(
    lambda x: checkify.checkify(checks.model_space, errors=checkify.user_checks)(x)[0]
)


def log_prob_images(
    model: Glow,
    params: Params,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    desc: str = "log p",
    with_latents: bool = False,
    mesh=None,
) -> dict[str, np.ndarray]:
    """log p of uint8 images at their bin midpoints (deterministic evaluation).

    Each batch is checked (finite, inside model space; :mod:`jaxood.checks`) by a
    small checkify program beside the unchanged scoring program; its error flag is
    read after the next batch has been dispatched, when the batch is finished
    anyway, so checking adds no synchronisation.

    Args:
        model, params: the flow.
        images: ``(N, H, W, C)`` uint8 in the model's image shape.
        batch_size: images per jitted call (the last batch is padded: one compile).
        desc: progress-bar label.
        with_latents: also return the standardised latents (float32): in image
            layout as ``"latents"`` ``(N, H, W, C)`` and per scale as
            ``"latents_0"`` … ``"latents_{L-1}"``.
        mesh: a ``jaxood.parallel.data_mesh`` (default: the mesh set with
            ``jax.set_mesh``, if any): every batch is split over its devices
            (params are replicated onto it).

    Returns:
        ``{"total": (N,), "per_scale": (N, L)}`` in nats, float64 numpy, plus the
        latents when asked for.
    """
    dtype = getattr(images, "dtype", type(images).__name__)
    if not hasattr(images, "shape") or dtype != np.uint8:
        raise TypeError(
            f"log_prob_images: images must be a uint8 array of pixels (0..255), got "
            f"{dtype}; for model-space floats call jaxood.flows.log_prob."
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != model.config.image_shape:
        raise ValueError(
            f"log_prob_images: images have shape {tuple(images.shape)}, the model "
            f"expects (N, {', '.join(map(str, model.config.image_shape))}). 28x28 "
            "data for a multi-scale model goes through jaxood.data.resize or "
            "jaxood.data.pad first."
        )
    if len(images) == 0:
        raise ValueError("log_prob_images: images is empty (shape (0, ...)).")
    batch_size = checks.positive_int(batch_size, "batch_size")
    pending = []  # the error of the batch in flight

    def one(_, batch):
        x = to_model_space(batch)
        error = _model_space_error(x)
        lp = _batch_log_prob(model, params, x)
        if pending:
            checks.throw(pending.pop())
        pending.append(error)
        out = {"total": lp.total, "per_scale": lp.per_scale}
        if with_latents:
            out["latents"] = latents_to_image(lp.latents)
            out.update({f"latents_{i}": u for i, u in enumerate(lp.latents)})
        return out

    mesh = parallel.current_mesh(mesh)
    if mesh is not None:
        params = parallel.replicate(mesh, params)
    out = map_batches(one, images, batch_size, desc=desc, mesh=mesh)
    checks.throw(pending.pop())
    for k in ("total", "per_scale"):
        out[k] = out[k].astype(np.float64)
    return out
