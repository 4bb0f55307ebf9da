"""VAEs for OOD detection: vanilla, Lipschitz-encoder and hyperspherical (vMF)."""

from jaxood.vae import likelihoods, vmf
from jaxood.vae.latents import GaussianLatent, Posterior, VMFLatent
from jaxood.vae.losses import negative_elbo_loss
from jaxood.vae.model import (
    VAE,
    VAEConfig,
    check_images,
    decode_mean,
    decoder_log_likelihoods,
    elbo,
    elbo_terms,
    encode,
    importance_estimates,
    importance_terms,
    init,
    iwae_bound,
    log_prob,
    sample,
)

__all__ = [
    "VAE",
    "GaussianLatent",
    "Posterior",
    "VAEConfig",
    "VMFLatent",
    "check_images",
    "decode_mean",
    "decoder_log_likelihoods",
    "elbo",
    "elbo_terms",
    "encode",
    "importance_estimates",
    "importance_terms",
    "init",
    "iwae_bound",
    "likelihoods",
    "log_prob",
    "negative_elbo_loss",
    "sample",
    "vmf",
]
