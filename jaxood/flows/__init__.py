"""Normalizing flows: bijectors and the multi-scale Glow / RealNVP."""

from jaxood.flows import losses
from jaxood.flows.actnorm import ActNorm
from jaxood.flows.bijector import Bijector
from jaxood.flows.conv1x1 import InvertibleConv1x1
from jaxood.flows.coupling import Coupling
from jaxood.flows.glow import (
    Glow,
    GlowConfig,
    LogProb,
    decode,
    encode,
    init,
    latents_to_image,
    log_prob,
    sample,
)
from jaxood.flows.scoring import log_prob_images
from jaxood.flows.squeeze import Squeeze, squeeze, unsqueeze

__all__ = [
    "ActNorm",
    "Bijector",
    "Coupling",
    "Glow",
    "GlowConfig",
    "InvertibleConv1x1",
    "LogProb",
    "Squeeze",
    "decode",
    "encode",
    "init",
    "latents_to_image",
    "log_prob",
    "log_prob_images",
    "losses",
    "sample",
    "squeeze",
    "unsqueeze",
]
