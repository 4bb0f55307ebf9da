"""Batched log-likelihoods of a whole image set, with a progress bar."""

from __future__ import annotations

import numpy as np

from jaxood.batching import map_batches
from jaxood.data.preprocess import check_model_space, to_model_space
from jaxood.flows.glow import Glow, _log_prob
from jaxood.typing import Params


def log_prob_images(
    model: Glow,
    params: Params,
    images: np.ndarray,
    *,
    batch_size: int = 256,
    desc: str = "log p",
) -> dict[str, np.ndarray]:
    """log p of uint8 images at their bin midpoints (deterministic evaluation).

    Args:
        model, params: the flow.
        images: ``(N, H, W, C)`` uint8 in the model's image shape.
        batch_size: images per jitted call (the last batch is padded: one compile).
        desc: progress-bar label.

    Returns:
        ``{"total": (N,), "per_scale": (N, L)}`` in nats, float64 numpy.
    """
    if len(images) == 0:
        raise ValueError("log_prob_images: no images.")
    check_model_space(to_model_space(images[:1]), model.config.image_shape)

    def one(_, batch):
        lp = _log_prob(model, params, to_model_space(batch))
        return {"total": lp.total, "per_scale": lp.per_scale}

    out = map_batches(one, images, batch_size, desc=desc)
    return {k: v.astype(np.float64) for k, v in out.items()}
