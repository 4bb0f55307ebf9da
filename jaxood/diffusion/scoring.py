"""Whole image sets through a trained score model: likelihood, FLIPD, samples.

The batched functions of :mod:`.likelihood` and :mod:`.flipd` take one batch of
diffusion-space arrays; these take uint8 images of any count, map them to [-1, 1],
run them in fixed-size batches with a progress bar (split over the ambient mesh,
``jaxood.parallel``) and return numpy arrays. Batch i uses ``fold_in(key, i)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxood import batching
from jaxood.diffusion.flipd import flipd_sweep
from jaxood.diffusion.likelihood import ode_log_prob_batch, ode_sample
from jaxood.diffusion.model import ScoreModel, score_function, to_diffusion_space
from jaxood.typing import Params, PRNGKey


def _score_fn(model: ScoreModel, params: Params):
    return score_function(model, jax.tree.map(jnp.asarray, params))


def log_prob_images(
    model: ScoreModel,
    params: Params,
    images: np.ndarray,
    key: PRNGKey,
    *,
    t_min: float | None = None,
    tolerance: float = 1e-5,
    num_probes: int = 1,
    batch_size: int = 100,
    desc: str = "log p",
) -> tuple[np.ndarray, np.ndarray]:
    """log p_{t_min}(y) of uint8 ``images`` through the probability-flow ODE.

    Args:
        model, params: the score model.
        images: ``(N, H, W, C)`` uint8 at the model's image shape.
        key: PRNG key of the Hutchinson probes.
        t_min: the time of the density (default: the model's training t_min, for
            bits/dim; OOD detectors often take a later time, e.g. 0.01, where the
            ODE is far less stiff).
        tolerance: rtol = atol of the adaptive Tsit5 solver.
        num_probes: Rademacher probes of the divergence, fixed along the path.
        batch_size: images per compiled call.
        desc: progress-bar label.

    Returns:
        ``(log_p, num_steps)``, ``(N,)`` each: nats of the density of y in
        diffusion space (:func:`jaxood.diffusion.bits_per_dim` converts), and
        the solver steps taken.
    """
    score_fn, sde = _score_fn(model, params), model.sde
    t_min = model.config.t_min if t_min is None else t_min

    def one(i, batch):
        out = ode_log_prob_batch(
            score_fn, to_diffusion_space(batch), jax.random.fold_in(key, i),
            sde=sde, t_min=t_min, num_probes=num_probes, rtol=tolerance,
            atol=tolerance,
        )  # fmt: skip
        return out.log_prob, out.num_steps

    return batching.map_batches(one, images, batch_size, desc=desc)


def flipd_images(
    model: ScoreModel,
    params: Params,
    images: np.ndarray,
    t0s,
    key: PRNGKey,
    *,
    num_probes: int | None = 1,
    batch_size: int = 100,
    desc: str = "FLIPD",
) -> np.ndarray:
    """FLIPD of uint8 ``images`` at every t0 of ``t0s``: ``(N, T)``, from
    :func:`jaxood.diffusion.flipd_sweep` (``num_probes`` None: exact trace)."""
    score_fn, t0s = _score_fn(model, params), jnp.asarray(t0s, jnp.float32)

    def one(i, batch):
        return flipd_sweep(
            score_fn, to_diffusion_space(batch), t0s, jax.random.fold_in(key, i),
            sde=model.sde, num_probes=num_probes,
        )  # fmt: skip

    return batching.map_batches(one, images, batch_size, desc=desc)


def sample_images(model: ScoreModel, params: Params, key: PRNGKey, num: int):
    """``num`` uint8 samples: the probability-flow ODE from N(0, I) at t = 1 to the
    model's t_min, then y in [-1, 1] back to pixels (the inverse of
    :func:`jaxood.diffusion.to_diffusion_space`'s bins)."""
    y = ode_sample(_score_fn(model, params), key, model.config.image_shape, num,
                   sde=model.sde, t_min=model.config.t_min)  # fmt: skip
    return np.clip(np.floor((np.asarray(y) + 1.0) * 128.0), 0, 255).astype(np.uint8)
