"""Batched log-likelihoods of a whole image set, with a progress bar."""

from __future__ import annotations

import numpy as np

from jaxood.batching import map_batches
from jaxood.data.preprocess import to_model_space
from jaxood.flows.glow import Glow, latents_to_image, log_prob
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

    uint8 pixels always map inside model space, so only dtype and shape are checked
    (no pass over the values).

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
    dtype = getattr(images, "dtype", type(images).__name__)
    if dtype != np.uint8:
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
        raise ValueError("log_prob_images: no images.")

    def one(_, batch):
        lp = log_prob(model, params, to_model_space(batch))
        out = {"total": lp.total, "per_scale": lp.per_scale}
        if with_latents:
            out["latents"] = latents_to_image(lp.latents)
            out.update({f"latents_{i}": u for i, u in enumerate(lp.latents)})
        return out

    out = map_batches(one, images, batch_size, desc=desc)
    for k in ("total", "per_scale"):
        out[k] = out[k].astype(np.float64)
    return out
