"""Diffusion models (VP-SDE), their likelihood, and LID from the score (FLIPD).

    model = ScoreModel(DiffusionConfig())              # a small UNet, 28x28x1
    params = init(model, key)                          # train: denoising_loss
    score_fn = score_function(model, params)           # one example: (y, t) -> score
    y = to_diffusion_space(images)                     # uint8 -> [-1, 1]
    lp = ode_log_prob_batch(score_fn, y, key, sde=model.sde)   # nats; bits_per_dim
    lid = flipd_sweep(score_fn, y, t0s, key, sde=model.sde, num_probes=8)
    log_p, steps = log_prob_images(model, params, images, key)  # whole uint8 sets
    lids = flipd_images(model, params, images, t0s, key)       # (N, T), batched

Every function that takes ``score_fn`` works with any pure score of one example, so
an analytic score or another library's network composes the same way.
"""

from jaxood.diffusion.divergence import probes, value_and_divergence
from jaxood.diffusion.flipd import flipd, flipd_sweep, knee
from jaxood.diffusion.likelihood import (
    ODELogProb,
    bits_per_dim,
    ode_log_prob,
    ode_log_prob_batch,
    ode_sample,
)
from jaxood.diffusion.model import (
    DiffusionConfig,
    ScoreModel,
    denoising_loss,
    init,
    noise_prediction,
    score,
    score_function,
    to_diffusion_space,
)
from jaxood.diffusion.normal_bundle import NormalBundle, normal_bundle_lid
from jaxood.diffusion.scoring import flipd_images, log_prob_images, sample_images
from jaxood.diffusion.sde import VPSDE

__all__ = [
    "VPSDE",
    "DiffusionConfig",
    "NormalBundle",
    "ODELogProb",
    "ScoreModel",
    "bits_per_dim",
    "denoising_loss",
    "flipd",
    "flipd_images",
    "flipd_sweep",
    "init",
    "knee",
    "log_prob_images",
    "noise_prediction",
    "normal_bundle_lid",
    "ode_log_prob",
    "ode_log_prob_batch",
    "ode_sample",
    "probes",
    "sample_images",
    "score",
    "score_function",
    "to_diffusion_space",
    "value_and_divergence",
]
