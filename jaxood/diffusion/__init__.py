"""Diffusion models (VP-SDE) and their LID estimators (FLIPD, normal bundle)."""

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
from jaxood.diffusion.sde import VPSDE

__all__ = [
    "VPSDE",
    "DiffusionConfig",
    "ScoreModel",
    "denoising_loss",
    "init",
    "noise_prediction",
    "score",
    "score_function",
    "to_diffusion_space",
]
