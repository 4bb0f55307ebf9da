"""Normalizing flows: bijectors and the multi-scale Glow / RealNVP."""

from jaxood.flows.actnorm import ActNorm
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
from jaxood.flows.squeeze import Squeeze, squeeze, unsqueeze

__all__ = [
    "ActNorm",
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
    "sample",
    "squeeze",
    "unsqueeze",
]
