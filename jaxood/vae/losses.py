"""The VAE training objective for :func:`jaxood.train.make_train_step`.

References: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxood.train import LossFn
from jaxood.vae.model import VAE, elbo_terms


def negative_elbo_loss(model: VAE) -> LossFn:
    """``loss(params, x, key)``: mean negative ELBO in nats per image.

    ``x`` is a ``(B, H, W, C)`` batch in [0, 1]; metrics are the mean
    reconstruction log-likelihood and KL, in nats per image.
    """

    def loss(params, x, key):
        reconstruction, kl = elbo_terms(model, params, x, key)
        value = jnp.mean(kl - reconstruction)
        return value, {"reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl)}

    return loss
