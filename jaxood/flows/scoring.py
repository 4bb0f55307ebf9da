"""Batched log-likelihoods of a whole image set, with a progress bar."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

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
        batch_size: images per jitted call; the last batch is padded (with copies)
            so that every call has the same shape and compiles once.
        desc: progress-bar label.

    Returns:
        ``{"total": (N,), "per_scale": (N, L)}`` in nats, float64 numpy.
    """
    n = len(images)
    if n == 0:
        raise ValueError("log_prob_images: no images.")
    totals, per_scales = [], []
    for start in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=None):
        batch = images[start : start + batch_size]
        real = len(batch)
        if real < batch_size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], batch_size - real, 0)])
        x = to_model_space(batch)
        if start == 0:
            check_model_space(x, model.config.image_shape)
        lp = _log_prob(model, params, x)
        totals.append(np.asarray(lp.total, np.float64)[:real])
        per_scales.append(np.asarray(lp.per_scale, np.float64)[:real])
    return {"total": np.concatenate(totals), "per_scale": np.concatenate(per_scales)}
