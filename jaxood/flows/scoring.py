"""Batched log-likelihoods of a whole image set, with a progress bar."""

from __future__ import annotations

import numpy as np

from jaxood.batching import map_batches
from jaxood.data.preprocess import check_model_space, to_model_space
from jaxood.flows.glow import Glow, _log_prob, latents_to_image
from jaxood.typing import Params


def log_prob_images(
    model: Glow,
    params: Params,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    desc: str = "log p",
    with_latents: bool = False,
) -> dict[str, np.ndarray]:
    """log p of uint8 images at their bin midpoints (deterministic evaluation).

    Args:
        model, params: the flow.
        images: ``(N, H, W, C)`` uint8 in the model's image shape.
        batch_size: images per jitted call (the last batch is padded: one compile).
        desc: progress-bar label.
        with_latents: also return the standardised latents (float32): in image
            layout as ``"latents"`` ``(N, H, W, C)`` and per scale as
            ``"latents_0"`` … ``"latents_{L-1}"``.

    Returns:
        ``{"total": (N,), "per_scale": (N, L)}`` in nats, float64 numpy, plus the
        latents when asked for.
    """
    if len(images) == 0:
        raise ValueError("log_prob_images: no images.")
    check_model_space(to_model_space(images[:1]), model.config.image_shape)

    def one(_, batch):
        lp = _log_prob(model, params, to_model_space(batch))
        out = {"total": lp.total, "per_scale": lp.per_scale}
        if with_latents:
            out["latents"] = latents_to_image(lp.latents)
            out.update({f"latents_{i}": u for i, u in enumerate(lp.latents)})
        return out

    out = map_batches(one, images, batch_size, desc=desc)
    for k in ("total", "per_scale"):
        out[k] = out[k].astype(np.float64)
    return out
